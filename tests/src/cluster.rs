//! A NATS JetStream cluster of real `nats-server` processes on loopback, for tests of
//! replicated streams and of clients that must survive the death of the node they use.

use crate::{Error, HARNESS, Identities, Result, free_port, nats_server_bin};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node: client, cluster-route and monitoring ports, and its own store directory.
struct Node {
    child: Option<Child>,
    port: u16,
    cluster_port: u16,
    monitor_port: u16,
    dir: tempfile::TempDir,
}

/// `size` nodes of one JetStream cluster (`saga-test`), each killed on drop. Every node
/// authenticates clients with the same identities ([`Identities`]), speaks TLS to clients and
/// mutual TLS on its routes.
pub struct NatsCluster {
    nodes: Vec<Node>,
    identities: Identities,
    _credentials: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes and waits until every one reports JetStream healthy (`/healthz`),
    /// which needs the cluster's meta leader elected.
    pub fn start(size: usize) -> Result<Self> {
        let mut nodes = Vec::with_capacity(size);
        for _ in 0..size {
            nodes.push(Node {
                child: None,
                port: free_port()?,
                cluster_port: free_port()?,
                monitor_port: free_port()?,
                dir: tempfile::Builder::new()
                    .prefix("saga-nats-node-")
                    .tempdir()?,
            });
        }
        let credentials = tempfile::Builder::new()
            .prefix("saga-nats-credentials-")
            .tempdir()?;
        // One CA for all: clients trust it, and each node proves itself to the others with
        // a certificate of it on the routes.
        let tls = crate::nats::tls_files(&credentials.path().join("tls"))?;
        let identities = Identities::make(credentials.path(), &[])?.with_ca(tls.ca.clone());
        for node in &nodes {
            let dir = node.dir.path();
            std::fs::write(dir.join("auth.conf"), identities.authorization())?;
            std::fs::write(
                dir.join("node.conf"),
                format!(
                    "include \"auth.conf\"\n{}cluster {{\n{}}}\n",
                    tls.client_block(),
                    tls.route_block()
                ),
            )?;
        }
        let mut cluster = NatsCluster {
            nodes,
            identities,
            _credentials: credentials,
        };
        for index in 0..size {
            cluster.spawn(index)?;
        }
        for index in 0..size {
            cluster.wait_healthy(index)?;
        }
        Ok(cluster)
    }

    /// Every node's URL, comma-separated, as NATS clients take a server list.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `index`'s own URL.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].port)
    }

    /// The identities of its clients.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// The command-line flags of a `saga` process running as identity `name`.
    pub fn auth_args(&self, name: &str) -> Vec<String> {
        self.identities.auth_args(name)
    }

    /// A client of the harness ([`HARNESS`]) to every node, allowed everything.
    pub async fn client(&self) -> Result<async_nats::Client> {
        self.identities.connect(&self.urls(), HARNESS).await
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Kills node `index` with SIGKILL, keeping its store.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on its ports and store, and waits until it is healthy
    /// (it has rejoined the cluster and caught up).
    pub fn restart(&mut self, index: usize) -> Result<()> {
        self.kill(index);
        self.spawn(index)?;
        self.wait_healthy(index)
    }

    fn spawn(&mut self, index: usize) -> Result<()> {
        let routes = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        let node = &mut self.nodes[index];
        let child = Command::new(nats_server_bin()?)
            .arg("-c")
            .arg(node.dir.path().join("node.conf"))
            .args(["-a", "127.0.0.1", "-p", &node.port.to_string()])
            .args(["-m", &node.monitor_port.to_string()])
            .args(["-n", &format!("node-{index}"), "-js", "-sd"])
            .arg(node.dir.path().join("js"))
            .args(["--cluster_name", "saga-test"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", node.cluster_port),
            ])
            .args(["--routes", &routes])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        node.child = Some(child);
        Ok(())
    }

    fn wait_healthy(&self, index: usize) -> Result<()> {
        let port = self.nodes[index].monitor_port;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthy(port) {
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "nats-server node-{index} to report JetStream healthy on port {port}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// Whether the monitoring endpoint on `port` answers `/healthz` with 200.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
