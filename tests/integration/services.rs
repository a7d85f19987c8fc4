//! Services exactly as SPEC §8, against real daemons under a real runit supervisor started in
//! the sandbox: order and overlap observed from the services' own logs, the affected set,
//! readiness failures and restoring, graph errors, and systemd's command lines through a
//! recording `systemctl`.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::*;

/// One service of a test graph: name, `after`, packages, startup delay.
struct Svc {
    name: &'static str,
    after: &'static [&'static str],
    packages: &'static [&'static str],
    delay: &'static str,
}

const fn svc(
    name: &'static str,
    after: &'static [&'static str],
    packages: &'static [&'static str],
) -> Svc {
    Svc {
        name,
        after,
        packages,
        delay: "300ms",
    }
}

/// A sandbox with runit services running `demo-service`, each on its own port.
struct Fixture {
    sb: Sandbox,
    runit: Runit,
    ports: HashMap<&'static str, u16>,
}

impl Fixture {
    fn new(services: &[Svc], extra: &str) -> Fixture {
        let sb = Sandbox::new();
        sb.write_config("[services]\nbackend = \"runit\"\n");
        let runit = Runit::new(sb.root.join("etc/service"));
        let mut ports = HashMap::new();
        let mut order = String::new();
        let log = sb.base.join("services.log");
        for s in services {
            let port = free_port();
            ports.insert(s.name, port);
            // the delay can be changed later through a file
            let delay_file = sb.base.join(format!("{}.delay", s.name));
            std::fs::write(&delay_file, s.delay).unwrap();
            runit.service(
                s.name,
                &format!(
                    "exec {} --name {} --port {port} --delay \"$(cat {})\" --log {} 2>&1",
                    demo_service().display(),
                    s.name,
                    delay_file.display(),
                    log.display()
                ),
            );
            order += &format!(
                "[service.{}]\nafter = {:?}\npackages = {:?}\nready = {{ tcp = \"127.0.0.1:{port}\", timeout = \"5s\" }}\n",
                s.name, s.after, s.packages
            );
        }
        order += extra;
        let dir = sb.root.join("usr/share/upgrade");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("service-order.toml"), order).unwrap();
        let mut runit = runit;
        runit.start();
        Fixture { sb, runit, ports }
    }

    fn set_delay(&self, name: &str, delay: &str) {
        std::fs::write(self.sb.base.join(format!("{name}.delay")), delay).unwrap();
    }

    /// (event, service, time) of every line the services logged, in time order.
    fn log(&self) -> Vec<(String, String, f64)> {
        let text = std::fs::read_to_string(self.sb.base.join("services.log")).unwrap_or_default();
        let mut lines: Vec<(String, String, f64)> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
            })
            .collect();
        lines.sort_by(|a, b| a.2.total_cmp(&b.2));
        lines
    }

    fn clear_log(&self) {
        let _ = std::fs::remove_file(self.sb.base.join("services.log"));
    }

    /// When `event` happened to `name` (the first time).
    fn at(&self, event: &str, name: &str) -> f64 {
        self.log()
            .iter()
            .find(|(e, n, _)| e == event && n == name)
            .unwrap_or_else(|| panic!("no `{event} {name}` in {:?}", self.log()))
            .2
    }

    fn names(&self, event: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|(e, _, _)| e == event)
            .map(|(_, n, _)| n)
            .collect()
    }

    fn answers(&self, name: &str) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.ports[name])).is_ok()
    }
}

/// db ← api, worker ← web: api and worker are independent of each other.
const DIAMOND: &[Svc] = &[
    svc("db", &[], &["demo-server"]),
    svc("api", &["db"], &[]),
    svc("worker", &["db"], &[]),
    svc("web", &["api", "worker"], &[]),
];

fn two_releases(sb: &Sandbox) {
    sb.publish(vec![
        rel(
            "1.0.0",
            vec![pkg("demo-server", "1.0.0"), pkg("demo-cli", "1.0.0")],
        ),
        rel(
            "2.0.0",
            vec![pkg("demo-server", "2.0.0"), pkg("demo-cli", "2.0.0")],
        ),
    ]);
}

#[test]
fn services_start_and_stop_in_dependency_order_and_independent_ones_overlap() {
    let fx = Fixture::new(DIAMOND, "");
    two_releases(&fx.sb);
    // a fresh install starts every service and stops none
    let run = fx.sb.run(&["--yes", "--to", "1.0.0"]);
    run.assert_code(0)
        .assert_stderr("stop services:      none (fresh install)")
        .assert_stderr("start services:     db, api, worker, web")
        .assert_stderr("started `web`, ready after");
    assert!(fx.names("stop").is_empty(), "{:?}", fx.log());
    assert!(fx.at("ready", "db") < fx.at("start", "api"));
    assert!(fx.at("ready", "db") < fx.at("start", "worker"));
    // independent: each starts before the other is ready
    assert!(fx.at("start", "api") < fx.at("ready", "worker"));
    assert!(fx.at("start", "worker") < fx.at("ready", "api"));
    assert!(fx.at("ready", "api") < fx.at("start", "web"));
    assert!(fx.at("ready", "worker") < fx.at("start", "web"));
    // NB: no wall-time bound here (tests share two cores); `bench/services` measures it
    for s in DIAMOND {
        assert!(fx.answers(s.name), "{} is not answering", s.name);
    }

    // the upgrade changes db's package: everything after it restarts, dependents stopped first
    fx.clear_log();
    let run = fx.sb.run(&["--yes"]);
    run.assert_code(0)
        .assert_stderr("stop services:      db, api, worker, web");
    assert_eq!(fx.names("stop").first().map(String::as_str), Some("web"));
    assert_eq!(fx.names("stop").last().map(String::as_str), Some("db"));
    assert!(fx.at("stop", "api") < fx.at("stop", "db"));
    assert!(fx.at("stop", "worker") < fx.at("stop", "db"));
    assert_eq!(fx.names("start").len(), 4, "{:?}", fx.log());
    assert_eq!(fx.names("start").first().map(String::as_str), Some("db"));
    assert_eq!(fx.names("start").last().map(String::as_str), Some("web"));
    assert!(fx.at("ready", "db") < fx.at("start", "api"));
    let history = fx.sb.run(&["history", "1", "--json"]).json();
    let steps: Vec<String> = history["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    assert!(
        steps.contains(&"hop0:start-services".to_string()),
        "{steps:?}"
    );
}

#[test]
fn only_the_affected_services_restart() {
    let services = &[
        svc("db", &[], &["demo-db"]),
        svc("api", &[], &["demo-server"]),
        svc("web", &["api"], &[]),
        svc("cron", &[], &[]),
        svc("proxy", &[], &[]),
    ];
    let fx = Fixture::new(services, "");
    // proxy restarts on every upgrade
    let order = fx.sb.root.join("usr/share/upgrade/service-order.toml");
    let text = std::fs::read_to_string(&order).unwrap();
    std::fs::write(
        &order,
        text.replace(
            "[service.proxy]\n",
            "[service.proxy]\nrestart = \"always\"\n",
        ),
    )
    .unwrap();
    fx.sb.publish(vec![
        rel(
            "1.0.0",
            vec![pkg("demo-server", "1.0.0"), pkg("demo-db", "1.0.0")],
        ),
        rel(
            "2.0.0",
            vec![pkg("demo-server", "2.0.0"), pkg("demo-db", "1.0.0")],
        ),
    ]);
    fx.sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    let plan = fx.sb.run(&["plan", "--json"]).json();
    assert_eq!(
        plan["hops"][0]["services"],
        serde_json::json!(["api", "proxy", "web"])
    );
    fx.clear_log();
    fx.sb.run(&["--yes"]).assert_code(0);
    let mut stopped = fx.names("stop");
    stopped.sort();
    assert_eq!(stopped, ["api", "proxy", "web"]);
    let mut started = fx.names("start");
    started.sort();
    assert_eq!(started, ["api", "proxy", "web"]);
    assert_eq!(fx.runit.state("db"), "run");
    assert_eq!(fx.runit.state("cron"), "run");
}

#[test]
fn a_service_that_never_becomes_ready_fails_the_run_and_the_others_come_back() {
    let services = &[
        svc("db", &[], &["demo-server"]),
        svc("bad", &["db"], &[]),
        svc("other", &["db"], &[]),
        svc("tail", &["bad"], &[]),
    ];
    let fx = Fixture::new(services, "");
    let order = fx.sb.root.join("usr/share/upgrade/service-order.toml");
    let text = std::fs::read_to_string(&order).unwrap();
    let port = fx.ports["bad"];
    std::fs::write(
        &order,
        text.replace(
            &format!("tcp = \"127.0.0.1:{port}\", timeout = \"5s\""),
            &format!("tcp = \"127.0.0.1:{port}\", timeout = \"1s\""),
        ),
    )
    .unwrap();
    two_releases(&fx.sb);
    fx.sb.run(&["--yes", "--to", "1.0.0"]).assert_code(0);
    fx.set_delay("bad", "60s");
    fx.clear_log();
    let run = fx.sb.run(&["--yes"]);
    run.assert_code(1)
        .assert_stderr("service `bad` did not become ready")
        .assert_stderr(&format!("127.0.0.1:{port}"))
        .assert_stderr("`sv status ") // the backend's status output
        .assert_stderr("run: ")
        .assert_stderr("starting the services it stopped again: tail");
    // db and other started in the run, tail brought back; bad itself is what failed
    for name in ["db", "other", "tail"] {
        assert!(
            wait_until(Duration::from_secs(5), || fx.answers(name)),
            "{name} was not brought back:\n{}",
            run.stderr
        );
    }
    // the run stays open; fixed, it resumes and starts everything
    fx.set_delay("bad", "0s");
    fx.sb
        .run(&["--yes"])
        .assert_code(0)
        .assert_stderr("resuming run");
    for name in ["db", "bad", "other", "tail"] {
        assert!(fx.answers(name), "{name} is down after the resume");
    }
}

#[test]
fn cycles_and_unknown_names_are_input_errors() {
    let sb = Sandbox::new();
    let dir = sb.root.join("usr/share/upgrade");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("service-order.toml"),
        "[service.a]\nafter = [\"c\"]\n[service.b]\nafter = [\"a\"]\n[service.c]\nafter = [\"b\"]\n",
    )
    .unwrap();
    sb.run(&["services", "order"])
        .assert_code(2)
        .assert_stderr("cycle: `a` → `b` → `c` → `a`");
    // the admin's file replaces the vendor's
    std::fs::write(
        sb.root.join("etc/upgrade/service-order.toml"),
        "[service.web]\nafter = [\"nginx\"]\n",
    )
    .unwrap();
    sb.run(&["services", "order"])
        .assert_code(2)
        .assert_stderr("`web` starts after `nginx`, which is not a service")
        .assert_stderr("etc/upgrade/service-order.toml:2:");
    std::fs::write(
        sb.root.join("etc/upgrade/service-order.toml"),
        "[service.db]\n[service.web]\nafter = [\"db\"]\n[service.cron]\n",
    )
    .unwrap();
    let run = sb.run(&["services", "order", "--json"]);
    run.assert_code(0).assert_stderr("level 2: web");
    let levels = &run.json()["levels"];
    assert_eq!(levels[0][0]["name"], "cron");
    assert_eq!(levels[0][1]["name"], "db");
    assert_eq!(levels[1][0]["after"], serde_json::json!(["db"]));
    sb.run(&["services", "restart", "ghost"])
        .assert_code(2)
        .assert_stderr("there is no service `ghost`");
}

#[test]
fn the_systemd_backend_runs_these_systemctl_command_lines() {
    let sb = Sandbox::new();
    let bin = sb.base.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = sb.base.join("systemctl.calls");
    let fake = bin.join("systemctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n[ \"$1\" = status ] && echo \"* $2 - fake unit\" && exit 3\n[ \"$1\" = daemon-reload ] && echo \"reload refused\" && exit 1\nexit 0\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let closed = free_port();
    let dir = sb.root.join("usr/share/upgrade");
    std::fs::create_dir_all(&dir).unwrap();
    let order = |ready: &str| {
        format!(
            "[service.postgresql]\n[service.demo-api]\nafter = [\"postgresql\"]\nunit = \"demo-api@main.service\"\n{ready}\n[service.nginx]\nafter = [\"demo-api\"]\n"
        )
    };
    std::fs::write(dir.join("service-order.toml"), order("")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |args: &[&str]| Run::from(sb.cmd(args).env("PATH", &path).output().unwrap());
    // a daemon-reload that fails is logged, and the starts go on (they report what systemd
    // makes of the units)
    run(&["services", "restart"]).assert_code(0);
    let log = std::fs::read_to_string(sb.root.join("var/log/upgrade/upgrade.log")).unwrap();
    assert!(log.contains("reload refused"), "{log}");
    let lines = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        lines,
        "stop nginx.service\nstop demo-api@main.service\nstop postgresql.service\n\
         daemon-reload\nstart postgresql.service\nstart demo-api@main.service\nstart nginx.service\n"
    );
    // a named service restarts with what comes after it; a failed readiness check asks status
    std::fs::remove_file(&calls).unwrap();
    std::fs::write(
        dir.join("service-order.toml"),
        order(&format!(
            "ready = {{ tcp = \"127.0.0.1:{closed}\", timeout = \"300ms\" }}"
        )),
    )
    .unwrap();
    run(&["services", "restart", "demo-api"])
        .assert_code(1)
        .assert_stderr("service `demo-api` did not become ready")
        .assert_stderr("`systemctl status demo-api@main.service`")
        .assert_stderr("* demo-api@main.service - fake unit");
    let lines = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        lines,
        "stop nginx.service\nstop demo-api@main.service\n\
         daemon-reload\nstart demo-api@main.service\nstatus demo-api@main.service\n\
         daemon-reload\nstart nginx.service\n"
    );
}

/// Kills the daemons a test's init scripts or command templates left behind (their pid files).
struct Pidfiles(Vec<std::path::PathBuf>);

impl Drop for Pidfiles {
    fn drop(&mut self) {
        for file in &self.0 {
            if let Some(pid) = std::fs::read_to_string(file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A shell fragment that starts `demo-service NAME` in the background, detached, with a pid file;
/// and one that stops it with SIGTERM and waits (bounded) until it is gone.
fn daemon_commands(sb: &Sandbox, name: &str, port: u16) -> (String, String, std::path::PathBuf) {
    let pidfile = sb.base.join(format!("{name}.pid"));
    let start = format!(
        "setsid {bin} --name {name} --port {port} --delay 200ms --log {log} </dev/null >/dev/null 2>&1 & echo $! > {pid}",
        bin = demo_service().display(),
        log = sb.base.join("services.log").display(),
        pid = pidfile.display()
    );
    let stop = format!(
        "p=$(cat {pid} 2>/dev/null) || exit 0; kill $p 2>/dev/null; i=0; while kill -0 $p 2>/dev/null && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done; rm -f {pid}",
        pid = pidfile.display()
    );
    (start, stop, pidfile)
}

fn service_log(sb: &Sandbox) -> Vec<String> {
    let text = std::fs::read_to_string(sb.base.join("services.log")).unwrap_or_default();
    let mut lines: Vec<(f64, String)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[2].parse().unwrap(), format!("{} {}", f[0], f[1]))
        })
        .collect();
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    lines
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| !l.starts_with("ready"))
        .collect()
}

#[test]
fn the_sysv_and_command_backends_drive_real_daemons_in_order() {
    let sb = Sandbox::new();
    sb.write_config("[services]\nbackend = \"sysv\"\n");
    let (db_port, api_port) = (free_port(), free_port());
    // `db` through an init script in the root's /etc/init.d; `api` through command templates
    let (db_start, db_stop, db_pid) = daemon_commands(&sb, "db", db_port);
    let (api_start, api_stop, api_pid) = daemon_commands(&sb, "api", api_port);
    let _guard = Pidfiles(vec![db_pid.clone(), api_pid.clone()]);
    let init = sb.root.join("etc/init.d");
    std::fs::create_dir_all(&init).unwrap();
    std::fs::write(
        init.join("db"),
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  start) {db_start} ;;\n  stop) {db_stop} ;;\n  status) kill -0 $(cat {pid}) 2>/dev/null && echo running || {{ echo stopped; exit 3; }} ;;\nesac\n",
            pid = db_pid.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(init.join("db"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = sb.root.join("usr/share/upgrade");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("service-order.toml"),
        format!(
            "[service.db]\nready = {{ tcp = \"127.0.0.1:{db_port}\", timeout = \"10s\" }}\n\n\
             [service.api]\nafter = [\"db\"]\nbackend = \"command\"\nstart = {api_start:?}\nstop = {api_stop:?}\n\
             status = \"kill -0 $(cat {api_pid_path})\"\n\
             ready = {{ command = \"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{api_port}'\", timeout = \"10s\" }}\n",
            api_pid_path = api_pid.display()
        ),
    )
    .unwrap();
    // both start (nothing was running), db first, and answer afterwards
    sb.run(&["services", "restart"]).assert_code(0);
    assert!(std::net::TcpStream::connect(("127.0.0.1", db_port)).is_ok());
    assert!(std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok());
    assert_eq!(service_log(&sb), ["start db", "start api"]);
    // a restart stops api before db, then starts db before api
    let first_db = std::fs::read_to_string(&db_pid).unwrap();
    std::fs::remove_file(sb.base.join("services.log")).unwrap();
    sb.run(&["services", "restart"]).assert_code(0);
    assert_eq!(
        service_log(&sb),
        ["stop api", "stop db", "start db", "start api"]
    );
    assert_ne!(
        std::fs::read_to_string(&db_pid).unwrap(),
        first_db,
        "db is a new process"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok());
}

#[test]
fn a_start_command_is_done_when_it_exits_though_the_daemon_holds_its_output() {
    let sb = Sandbox::new();
    let pidfile = sb.base.join("daemon.pid");
    let _guard = Pidfiles(vec![pidfile.clone()]);
    let dir = sb.root.join("usr/share/upgrade");
    std::fs::create_dir_all(&dir).unwrap();
    // the daemon inherits the start command's stdout and stderr and keeps them open
    std::fs::write(
        dir.join("service-order.toml"),
        format!(
            "[service.d]\nbackend = \"command\"\nstart = \"sleep 300 & echo $! > {pid}\"\n\
             stop = \"kill $(cat {pid}) 2>/dev/null; true\"\n",
            pid = pidfile.display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    sb.run(&["services", "restart"]).assert_code(0);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(10),
        "the start command's daemon kept the run waiting {took:?}"
    );
    assert!(pidfile.exists());
}
