//! Property tests of the tolerant problem parser.

use omnisend::Problem;
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_body_parses_to_a_problem_with_a_status(status in 400u16..600, body in proptest::collection::vec(any::<u8>(), 0..2_000)) {
        let p = Problem::parse(status, &body);
        prop_assert!(p.status.is_some());
        prop_assert!(p.detail.as_ref().is_none_or(|d| d.chars().count() <= omnisend::problem::MAX_TEXT_DETAIL_CHARS + 1));
    }

    #[test]
    fn field_errors_survive_a_round_trip(field in "[a-z.0-9]{1,30}", code in "[a-z_]{1,20}", message in ".{0,80}") {
        let body = serde_json::json!({"title": "Validation failed", "status": 400,
            "errors": [{"field": field, "code": code, "message": message}]});
        let p = Problem::parse(400, body.to_string().as_bytes());
        prop_assert_eq!(p.errors.len(), 1);
        prop_assert_eq!(p.errors[0].field.as_deref(), Some(field.as_str()));
    }
}
