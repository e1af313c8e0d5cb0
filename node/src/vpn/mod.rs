//! `dktp up` / `dktp down`: a VPN interface, the way `wg-quick` brings one up. One file
//! per interface ([`conf`]); `up` makes the TUN interface, gives it its addresses, MTU and
//! routes (with `ip`, printing each command as `wg-quick` does), connects to the peers
//! that have an `Endpoint` and accepts the others on `ListenPort` (the concentrator: a
//! `dktp serve` whose sessions carry IP packets), and carries packets between the
//! interface and the tunnels ([`path`]). It stays in the background (or in the foreground
//! with `-f`, for systemd) until `dktp down` or a signal; then the interface, and with it
//! its addresses and routes, is removed.
//!
//! Each pair's pre-shared secrets live in the interface's store, exactly as for `dktp
//! serve` and `dktp connect`: a killed `dktp up` comes back on the same generation.

pub mod conf;
pub mod path;

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use tracing::{info, warn};

use crate::config::{PeerSpec, ServeConfig, Target};
use crate::connect::{Backoff, Client};
use crate::keys;
use crate::serve::Server;
use crate::store::Store;
use crate::tunnel::{Work, describe};
use conf::VpnConf;
use path::{Discard, Path, Sink};

/// Bytes each direction of a VPN tunnel may queue in the process (the rest waits in the
/// per-peer packet queue, and beyond it packets are dropped: TCP over TCP must not build a
/// standing queue).
pub const VPN_BUFFER: usize = 256 << 10;

/// Where `dktp up` keeps its pid and log files (`DKTP_RUN_DIR` overrides it).
pub const RUN_DIR: &str = "/run/dktp";

/// The folder `dktp up NAME` looks in when given a name rather than a file.
pub const CONF_DIR: &str = "/etc/dktp";

/// `dktp up`.
#[derive(Args)]
pub struct UpArgs {
    /// The interface file (or a name: /etc/dktp/NAME.conf).
    config: String,
    /// Stay in the foreground (for systemd); by default `up` returns once the interface is
    /// up and leaves a process in the background.
    #[arg(short, long)]
    foreground: bool,
}

/// `dktp down`.
#[derive(Args)]
pub struct DownArgs {
    /// The interface file (or a name: /etc/dktp/NAME.conf).
    config: String,
}

fn conf_path(arg: &str) -> PathBuf {
    if arg.contains('/') || arg.ends_with(".conf") {
        PathBuf::from(arg)
    } else {
        FsPath::new(CONF_DIR).join(format!("{arg}.conf"))
    }
}

fn run_dir() -> PathBuf {
    std::env::var_os("DKTP_RUN_DIR").map_or_else(|| PathBuf::from(RUN_DIR), PathBuf::from)
}

fn pid_file(name: &str) -> PathBuf {
    run_dir().join(format!("{name}.pid"))
}

/// Runs `ip ARGS`, printing it as `wg-quick` does.
fn ip(args: &[&str]) -> Result<()> {
    eprintln!("[#] ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (Debian: iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn interface_exists(name: &str) -> bool {
    FsPath::new("/sys/class/net").join(name).exists()
}

/// `dktp up`: in the foreground, or by starting itself in the background and waiting until
/// the interface is up.
pub fn up(a: UpArgs, runtime: impl FnOnce() -> Result<tokio::runtime::Runtime>) -> Result<()> {
    let path = conf_path(&a.config);
    let conf = VpnConf::load(&path)?;
    if a.foreground {
        return runtime()?.block_on(run(conf, crate::shutdown_signal()));
    }
    if interface_exists(&conf.name) {
        bail!("{} already exists", conf.name);
    }
    let dir = run_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join(format!("{}.log", conf.name));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let start = std::fs::metadata(&log).map_or(0, |m| m.len());
    let exe = std::env::current_exe().context("finding the dktp binary")?;
    let abs = std::fs::canonicalize(&path).unwrap_or(path);
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .arg("up")
            .arg("--foreground")
            .arg(&abs)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0)
            .spawn()
            .context("starting dktp up in the background")?
    };
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pidf = pid_file(&conf.name);
    loop {
        // What the background process wrote since it started.
        let echo_log = || {
            let text = std::fs::read(&log).unwrap_or_default();
            eprint!(
                "{}",
                String::from_utf8_lossy(text.get(start as usize..).unwrap_or(&[]))
            );
        };
        if let Some(status) = child.try_wait()? {
            echo_log();
            bail!("dktp up {} failed ({status})", conf.name);
        }
        if std::fs::read_to_string(&pidf).is_ok_and(|s| s.trim() == pid.to_string()) {
            echo_log();
            println!(
                "{} is up (pid {pid}; log {}; `dktp down {}` takes it down)",
                conf.name,
                log.display(),
                conf.path.display()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "{} did not come up within a minute (log: {})",
                conf.name,
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `dktp down`: stops the interface's process and makes sure the interface is gone.
pub fn down(a: DownArgs) -> Result<()> {
    let conf = VpnConf::load(&conf_path(&a.config))?;
    let name = &conf.name;
    let pidf = pid_file(name);
    let pid = std::fs::read_to_string(&pidf)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let mut stopped = false;
    if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
        eprintln!("[#] kill -TERM {}", pid.as_raw_nonzero());
        if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok() {
            let proc_dir = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc_dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if proc_dir.exists() {
                eprintln!("[#] kill -KILL {}", pid.as_raw_nonzero());
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            stopped = true;
        }
        let _ = std::fs::remove_file(&pidf);
    }
    if stopped {
        // The process removes its interface as it exits (after SIGKILL the kernel does, with
        // the process's file descriptor).
        let deadline = Instant::now() + Duration::from_secs(5);
        while interface_exists(name) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // One left by anything else goes here.
    let left = interface_exists(name);
    if left {
        ip(&["link", "delete", "dev", name])?;
    }
    if !stopped && !left {
        bail!(
            "{name} is not up (no running process in {}, no interface)",
            pidf.display()
        );
    }
    Ok(())
}

/// The TUN interface as the data path's sink.
struct Tun(Arc<tun_rs::AsyncDevice>);

impl Sink for Tun {
    fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        self.0.try_send(packet).map(|_| ())
    }
}

/// Runs an interface until `stop`.
pub async fn run(conf: VpnConf, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    if !FsPath::new("/dev/net/tun").exists() {
        bail!("/dev/net/tun is missing: this system (or container) has no TUN devices");
    }
    if interface_exists(&conf.name) {
        bail!("{} already exists", conf.name);
    }
    for p in &conf.peers {
        for net in &p.allowed {
            if net.prefix_len() == 0 {
                bail!(
                    "peer {}: AllowedIPs {net} would route everything, the tunnel's own connection included; \
                     list the subnets to route instead",
                    p.name
                );
            }
        }
    }
    let pairs = conf
        .peers
        .iter()
        .map(|p| {
            keys::load_pair(&p.local_key, &p.remote_key).with_context(|| format!("peer {}", p.name))
        })
        .collect::<Result<Vec<_>>>()?;
    let store = Store::open(&conf.store)?;

    let dev = tun_rs::DeviceBuilder::new()
        .name(conf.name.clone())
        .mtu(conf.mtu)
        .build_async()
        .with_context(|| format!("creating the TUN interface {}", conf.name))?;
    let dev = Arc::new(dev);
    let name = conf.name.as_str();
    let configured = configure(&conf);
    if let Err(e) = configured {
        let _ = ip(&["link", "delete", "dev", name]);
        return Err(e);
    }
    let peers: Vec<(String, Vec<ipnet::IpNet>)> = conf
        .peers
        .iter()
        .map(|p| (p.name.clone(), p.allowed.clone()))
        .collect();
    let path = Arc::new(Path::new(
        &peers,
        usize::from(conf.mtu),
        Arc::new(Tun(dev.clone())),
    ));

    let mut tasks = tokio::task::JoinSet::new();
    {
        let (dev, path) = (dev.clone(), path.clone());
        tasks.spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                match dev.recv(&mut buf).await {
                    Ok(n) => path.outbound(&buf[..n]),
                    Err(e) => return Err(anyhow!("reading the TUN interface: {e}")),
                }
            }
        });
    }
    // The peers that connect to this host: a concentrator on ListenPort.
    let served: Vec<usize> = (0..conf.peers.len())
        .filter(|&i| conf.peers[i].endpoint.is_none())
        .collect();
    if !served.is_empty() {
        let mut cfg = ServeConfig::defaults(conf.store.clone());
        cfg.listen = conf.listen.clone();
        cfg.default_listen = conf.listen_any;
        cfg.metrics = conf.metrics;
        cfg.buffer = VPN_BUFFER;
        cfg.handshake_threads = Some(1);
        cfg.peers = served
            .iter()
            .map(|&i| PeerSpec {
                name: Some(conf.peers[i].name.clone()),
                key: conf.peers[i].local_key.clone(),
                peer: conf.peers[i].remote_key.clone(),
                forward: Some(Target::Echo),
            })
            .collect();
        let by_keyid: HashMap<[u8; 16], usize> = served
            .iter()
            .map(|&i| (*pairs[i].local.keyid(), i))
            .collect();
        let server = Server::new(&cfg, store.clone())?.with_vpn(path.clone(), by_keyid);
        let bound = Server::bind(&cfg).await?;
        tasks.spawn(server.run(bound, std::future::pending()));
    }
    // The peers this host connects to.
    for (i, p) in conf.peers.iter().enumerate() {
        let Some(endpoint) = p.endpoint.clone() else {
            continue;
        };
        let client = Client::new(pairs[i].clone(), store.clone(), endpoint)?
            .with_linger(Duration::ZERO)
            .with_backoff(Backoff {
                max: Duration::from_secs(10),
                ..Backoff::default()
            })
            .with_work(Work {
                queue_limit: VPN_BUFFER,
                ..Work::inline()
            });
        let (path, name) = (path.clone(), p.name.clone());
        tasks.spawn(async move {
            loop {
                let mut d = match client.establish().await {
                    Ok(d) => d,
                    Err(e) => return Err(e.context(format!("peer {name}"))),
                };
                info!(peer = %name, "peer connected");
                let end = d.pump(path.local(i)).await;
                d.shutdown().await;
                warn!(peer = %name, "tunnel ended: {}; connecting again", describe(&end));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    let dir = run_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pidf = pid_file(name);
    std::fs::write(&pidf, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", pidf.display()))?;
    info!(
        interface = name,
        peers = conf.peers.len(),
        mtu = conf.mtu,
        "interface up"
    );
    let r = tokio::select! {
        () = stop => Ok(()),
        Some(r) = tasks.join_next() => match r {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Ok(()),
            Err(e) => Err(anyhow!("{e}")),
        },
    };
    tasks.abort_all();
    let drops: Vec<String> = Discard::ALL
        .iter()
        .map(|&d| format!("{} {}", d.label(), path.dropped(d)))
        .collect();
    let per_peer: Vec<String> = path
        .peers()
        .iter()
        .map(|p| {
            format!(
                "{} {} out / {} in",
                p.name,
                p.tx_packets.load(std::sync::atomic::Ordering::Relaxed),
                p.rx_packets.load(std::sync::atomic::Ordering::Relaxed)
            )
        })
        .collect();
    info!(
        interface = name,
        "stopping; packets {}; dropped: {}",
        per_peer.join(", "),
        drops.join(", ")
    );
    if std::fs::read_to_string(&pidf).is_ok_and(|s| s.trim() == std::process::id().to_string()) {
        let _ = std::fs::remove_file(&pidf);
    }
    let _ = ip(&["link", "delete", "dev", name]);
    r
}

/// Addresses, MTU, up, and a route for each peer's AllowedIPs that the addresses' own
/// subnets do not already cover.
fn configure(conf: &VpnConf) -> Result<()> {
    let name = conf.name.as_str();
    for a in &conf.addresses {
        let text = a.to_string();
        if a.addr().is_ipv6() {
            ip(&["-6", "address", "add", &text, "dev", name, "nodad"])?;
        } else {
            ip(&["-4", "address", "add", &text, "dev", name])?;
        }
    }
    let mtu = conf.mtu.to_string();
    ip(&["link", "set", "mtu", &mtu, "up", "dev", name])?;
    for p in &conf.peers {
        for net in &p.allowed {
            if conf.addresses.iter().any(|a| a.trunc().contains(net)) {
                continue;
            }
            let family = if net.addr().is_ipv6() { "-6" } else { "-4" };
            ip(&[family, "route", "replace", &net.to_string(), "dev", name])?;
        }
    }
    Ok(())
}
