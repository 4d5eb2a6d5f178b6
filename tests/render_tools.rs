//! The rendered files read by the real programs that will read them, where those programs run
//! without a server: `promtool check config` for prometheus.yml, Prometheus' own flag parser
//! for the command line the compose file gives it, and Node.js running replica-set.js against
//! a stand-in `rs` (first run, re-run, real failure). Needs `promtool` and `prometheus`
//! (apt-get install -y prometheus) and `node` (apt-get install -y nodejs); fails without them.

mod render_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use render_support::*;

fn run(program: &str, package: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is required to check rendered files ({e}); install it: apt-get install -y {package}")
        });
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn promtool_accepts_every_rendered_prometheus_config() {
    for (name, fleet) in fleets() {
        let hosts = redacted(&fleet);
        let monitoring = fleet.monitoring_host().unwrap();
        let config = file(&hosts, &monitoring.name, "monitoring/prometheus/prometheus.yml");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prometheus.yml");
        std::fs::write(&path, &config.content).unwrap();
        let alerts = file(&hosts, &monitoring.name, "monitoring/prometheus/alerts.yml");
        std::fs::write(dir.path().join("alerts.yml"), &alerts.content).unwrap();
        let output = run("promtool", "prometheus", &["check", "config", path.to_str().unwrap()], None);
        assert!(output.status.success(), "{name}: promtool rejects prometheus.yml:\n{}", text(&output));

        let broken = config.content.replace("scrape_interval:", "scrape_intervall:");
        std::fs::write(&path, broken).unwrap();
        let output = run("promtool", "prometheus", &["check", "config", path.to_str().unwrap()], None);
        assert!(!output.status.success(), "promtool accepts anything; this check proves nothing");
    }
}

/// The shipped alert rules: valid for promtool, and they fire (or stay quiet) as
/// `prometheus/alerts-test.yml` says, with the default `monitoring.alert_for`.
#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let fleet = load("inventory.example.toml");
    assert_eq!(fleet.monitoring.alert_for, "5m", "alerts-test.yml is written for the default");
    let hosts = redacted(&fleet);
    let monitoring = fleet.monitoring_host().unwrap();
    let alerts = file(&hosts, &monitoring.name, "monitoring/prometheus/alerts.yml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alerts.yml"), &alerts.content).unwrap();
    let cases = dir.path().join("alerts-test.yml");
    std::fs::copy(root().join("prometheus/alerts-test.yml"), &cases).unwrap();
    let output = run("promtool", "prometheus", &["check", "rules", dir.path().join("alerts.yml").to_str().unwrap()], None);
    assert!(output.status.success(), "promtool rejects alerts.yml:\n{}", text(&output));
    let output = run("promtool", "prometheus", &["test", "rules", cases.to_str().unwrap()], None);
    assert!(output.status.success(), "the alert rules fail their tests:\n{}", text(&output));

    // The tests must be able to fail: an instance down alert that never fires breaks them.
    std::fs::write(dir.path().join("alerts.yml"), alerts.content.replace("up{job=\"rocketchat\"} == 0", "up{job=\"rocketchat\"} == 2")).unwrap();
    let output = run("promtool", "prometheus", &["test", "rules", cases.to_str().unwrap()], None);
    assert!(!output.status.success(), "promtool test rules passes a broken rule; these tests prove nothing");
}

#[test]
fn prometheus_parses_the_rendered_command_line() {
    for (name, fleet) in fleets() {
        let hosts = redacted(&fleet);
        let monitoring = fleet.monitoring_host().unwrap();
        let compose = yaml(file(&hosts, &monitoring.name, "monitoring/compose.yml"));
        let mut flags = strings(at(&compose, &["services", "prometheus", "command"]));
        // `--version` makes Prometheus stop after parsing every flag, without starting.
        flags.push("--version".into());
        let args: Vec<&str> = flags.iter().map(String::as_str).collect();
        let output = run("prometheus", "prometheus", &args, None);
        assert!(output.status.success(), "{name}: prometheus rejects its flags:\n{}", text(&output));
    }
    let output = run("prometheus", "prometheus", &["--no.such.flag", "--version"], None);
    assert!(!output.status.success(), "prometheus accepts unknown flags; this check proves nothing");
}

/// Runs replica-set.js with a stand-in `rs` whose `initiate` logs its argument as JSON, then
/// behaves as `outcome` says: `ok`, or throws a MongoServerError-like `{code}`.
fn run_script(script: &str, outcome: &str) -> Output {
    let stand_in = format!(
        "const rs = {{ initiate(config) {{ console.log(JSON.stringify(config)); \
         const outcome = {outcome:?}; if (outcome !== 'ok') {{ const e = new Error('refused'); e.code = Number(outcome); throw e; }} }} }};\n"
    );
    run("node", "nodejs", &["-"], Some(&format!("{stand_in}{script}")))
}

#[test]
fn replica_set_script_initiates_once_and_tolerates_only_already_initialized() {
    for (name, fleet) in fleets() {
        let hosts = redacted(&fleet);
        let db = fleet.database_host();
        let script = &file(&hosts, &db.name, "database/replica-set.js").content;

        let output = run_script(script, "ok");
        assert!(output.status.success(), "{name}: {}", text(&output));
        let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            config,
            serde_json::json!({
                "_id": fleet.mongodb.replica_set,
                "members": [{"_id": 0, "host": format!("{}:{}", db.private_address, fleet.mongodb.port)}],
            })
        );

        assert!(run_script(script, "23").status.success(), "{name}: a re-run (AlreadyInitialized) must succeed");
        let output = run_script(script, "93");
        assert!(!output.status.success(), "{name}: InvalidReplicaSetConfig must fail the init container");
    }
}
