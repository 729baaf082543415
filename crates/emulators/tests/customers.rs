//! Tests of the deterministic customer generator against libphonenumber (the parser the
//! connector uses): every phone the rules call valid is valid, and its E.164 is the expected one.

use emulators::customers::{
    CustomerSpec, PhoneKind, country, expected_custom_mobile_e164, expected_e164,
    generate_customers, phone_kind, raw_phone,
};
use phonenumber::Mode;
use phonenumber::country::Id;

fn parse_valid(raw: &str, region: Option<Id>) -> Option<String> {
    let parsed = phonenumber::parse(region, raw).ok()?;
    phonenumber::is_valid(&parsed).then(|| parsed.format().mode(Mode::E164).to_string())
}

#[test]
fn every_generated_phone_parses_to_its_expected_e164() {
    for n in (0..400).chain(9_990..10_010) {
        let region: Option<Id> = country(n).parse().ok();
        assert!(region.is_some());
        let raw = raw_phone(n);
        match phone_kind(n) {
            PhoneKind::None => assert_eq!(raw, None),
            PhoneKind::Invalid => {
                let raw = raw.unwrap();
                assert_eq!(parse_valid(&raw, region), None, "{n}: {raw}");
                assert_eq!(expected_e164(n), None);
            }
            PhoneKind::SharedWith(_) => {
                // written internationally: parses the same without (or with any) region
                let raw = raw.unwrap();
                assert_eq!(parse_valid(&raw, None), expected_e164(n), "{n}: {raw}");
                assert_eq!(parse_valid(&raw, Some(Id::US)), expected_e164(n));
            }
            PhoneKind::Valid => {
                let raw = raw.unwrap();
                assert_eq!(parse_valid(&raw, region), expected_e164(n), "{n}: {raw}");
            }
        }
        if let Some(expected) = expected_custom_mobile_e164(n) {
            let customer = emulators::customers::customer(&CustomerSpec::default(), n);
            let raw = customer["custom"]["fields"]["mobilePhone"]
                .as_str()
                .unwrap();
            assert_eq!(parse_valid(raw, None).as_deref(), Some(expected.as_str()));
        }
    }
}

#[test]
fn generated_customers_put_the_phone_where_the_rules_say() {
    let data = generate_customers(&CustomerSpec {
        customers: 60,
        ..CustomerSpec::default()
    });
    for (n, c) in data.customers.iter().enumerate() {
        let shipping = c["addresses"][0]["mobile"].as_str();
        let billing = c["addresses"][1]["phone"].as_str();
        let found = shipping.or(billing).map(str::to_owned);
        assert_eq!(found, raw_phone(n), "{n}");
        assert!(shipping.is_none() || billing.is_none());
    }
}
