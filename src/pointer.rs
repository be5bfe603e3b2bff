//! JSON pointers (RFC 6901, `/mapping/email`) are how every layer names a place in a job
//! document: the YAML loader indexes positions by them, the schema validator reports instance
//! paths in them, templates are registered under them. One way to build and to print them
//! keeps a problem found anywhere traceable to its `file:line:col`.

/// Escape one key as a pointer segment: `~` → `~0`, `/` → `~1`.
pub fn segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A pointer as a user reads it: `/api/tenant_id` → `api.tenant_id`; `/mapping/tagStr/1` →
/// `mapping.tagStr[1]`.
pub fn display(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.chars().all(|c| c.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_paths_read_like_yaml() {
        assert_eq!(display("/api/tenant_id"), "api.tenant_id");
        assert_eq!(display("/mapping/tagStr/1"), "mapping.tagStr[1]");
        assert_eq!(display(""), "");
    }

    #[test]
    fn segments_escape_and_display_unescapes() {
        assert_eq!(segment("a/b~c"), "a~1b~0c");
        assert_eq!(
            display(&format!("/vars/{}", segment("a/b~c"))),
            "vars.a/b~c"
        );
    }
}
