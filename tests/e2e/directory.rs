//! The directory layer against real slapd: connection, round trips, errors.

use dirbroker::directory::Scope;
use dirbroker::testbed::Identity;
use dirbroker_tests::start;

#[tokio::test]
async fn testbed_answers_as_broker() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let who = dir.whoami().await.unwrap();
    assert_eq!(who, format!("dn:{}", bed.layout().broker_dn().unwrap()));
    let ous = dir
        .search(
            &bed.layout().base,
            Scope::OneLevel,
            &dirbroker::directory::Filter::object_class("organizationalUnit"),
            &["ou"],
        )
        .await
        .unwrap();
    assert_eq!(ous.len(), 11);
}
