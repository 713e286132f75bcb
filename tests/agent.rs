//! The agent's behaviour through its real binary on 127.0.0.1.

mod common;
use common::*;

#[test]
fn serves_the_state_file_and_follows_signals() {
    let a = Agent::start(Some(r#"{"status":"UP","weight":77,"maxconn":300}"#), &[]);
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    assert!(wait_for(std::time::Duration::from_secs(5), || a
        .state_text()
        .contains("\"DOWN\"")));
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 77% maxconn:300\n");
    assert_eq!(a.stop(), Some(0));
}
