//! Talking to the CDP API: the signature (`sign`), the wire types (`wire`), the hash a body
//! is journaled by (`payload`) and the client with its one retry policy (`client`).

pub mod client;
pub mod payload;
pub mod sign;
pub mod wire;

/// SPEC §5: `https://`, or plain `http://` to a loopback host (the simulator, local tests).
pub fn check_base_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("{url} is not an http(s) URL"));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "plain http:// is allowed only for loopback hosts; use https://{rest}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_base_url;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(check_base_url("https://api.nxcloud.com").is_ok());
        for ok in [
            "http://127.0.0.1:8787",
            "http://127.1.2.3/x",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            assert!(check_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.nxcloud.com",
            "http://10.0.0.1",
            "ftp://x",
            "http://127.0.0.1.evil.com",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }
}
