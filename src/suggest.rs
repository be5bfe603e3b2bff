//! The one "did you mean" of every message: unknown job keys, CSV columns, export columns
//! and the tenant's custom fields all suggest a name the same way, so a user learns one rule.
//!
//! The rule: ignoring case, the candidate is at most one edit away — one character inserted,
//! deleted or replaced, or two neighbours swapped (optimal string alignment distance).
//! Damerau (1964) found that over 80% of misspellings are exactly one such slip, and a
//! stricter rule than a similarity score keeps us from "correcting" a name into an unrelated
//! one that merely shares a long prefix (`customize_9_99` is not `customize_1_14`). Where no
//! name is close, each message lists the names instead.

/// Names shorter than this only match a candidate that differs in case: one edit turns
/// `id` into half of anything.
const MIN_LEN_FOR_AN_EDIT: usize = 3;

/// The candidate `name` was most likely meant to be, if one is close enough; the first of
/// the closest in `candidates`' order. An exact match is not a suggestion.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let allowed = usize::from(lower.chars().count() >= MIN_LEN_FOR_AN_EDIT);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = strsim::osa_distance(&lower, &candidate.to_lowercase());
        if distance <= allowed && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn one_slip_is_corrected() {
        let keys = ["timeout_secs", "max_retries", "concurrency"];
        assert_eq!(
            closest("time_out_secs", keys),
            Some("timeout_secs"),
            "insert"
        );
        assert_eq!(closest("concurency", keys), Some("concurrency"), "delete");
        assert_eq!(closest("max_retrios", keys), Some("max_retries"), "replace");
        assert_eq!(closest("frist", ["last", "first"]), Some("first"), "swap");
        assert_eq!(
            closest("customize_1_41", ["customize_3_7", "customize_1_14"]),
            Some("customize_1_14"),
            "swapped digits"
        );
    }

    #[test]
    fn case_does_not_count_as_an_edit() {
        let columns = ["whatApp_subscribe", "whatsApp_phone", "sms_phone"];
        assert_eq!(closest("whats_app_phone", columns), Some("whatsApp_phone"));
        assert_eq!(closest("ID", ["id", "ids"]), Some("id"));
    }

    #[test]
    fn nothing_is_suggested_when_nothing_is_close() {
        assert_eq!(closest("lowercase", ["lower", "upper"]), None);
        assert_eq!(closest("customize_9_99", ["customize_1_14"]), None);
        assert_eq!(closest("ip", ["id"]), None, "too short for an edit");
        assert_eq!(closest("email", ["email"]), None, "an exact match");
        assert_eq!(closest("email", []), None);
    }

    #[test]
    fn the_nearest_wins_then_the_first() {
        assert_eq!(closest("Email", ["emails", "email"]), Some("email"));
        assert_eq!(closest("bat", ["cat", "hat"]), Some("cat"));
    }
}
