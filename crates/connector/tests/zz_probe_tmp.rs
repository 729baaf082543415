use connector::config::{ContactsSettings, PrimaryIdentifier};
use connector::mapping::contacts::*;
use time::macros::datetime;
#[test]
fn probe() {
    let base = MemberFacts {
        member_id: "c0".into(), kind: MemberKind::Customer, email: Some("a@b.com".into()), phone: None,
        created_at: datetime!(2026-01-01 0:00 UTC), modified_at: datetime!(2026-01-03 0:00 UTC),
        profile: Profile { country_code: Some("DE".into()), ..Default::default() }, email_consent: None, sms_consent: None, tags: Default::default(), properties: Default::default(),
    };
    let st = |doi| Statement { granted: true, at: Some(datetime!(2026-01-02 0:00 UTC)), source: None, double_opt_in: doi, ip: None, user_agent: None };
    let a = MemberFacts { member_id: "c1".into(), email_consent: Some(st(Some(true))), ..base.clone() };
    let b = MemberFacts { member_id: "c2".into(), email_consent: Some(st(None)), modified_at: datetime!(2026-01-01 0:00 UTC), ..base.clone() };
    let s = ContactsSettings::default();
    let m1 = merge(&[a.clone(), b.clone()], PrimaryIdentifier::Email, &s, true, |_| Ownership::Ours).unwrap().0.body;
    let m2 = merge(&[b.clone(), a.clone()], PrimaryIdentifier::Email, &s, true, |_| Ownership::Ours).unwrap().0.body;
    println!("{:?}\n{:?}", m1.identifiers, m2.identifiers);
    assert_eq!(m1, m2);
}
