//! Tests of the deployment files in `deploy/`: the Docker image, a cluster of containers
//! scraped by a real Prometheus, the alert rules and the Grafana dashboard.
//!
//! The library holds what the integration tests in `tests/` share:
//!
//! - [`env`]: where the repository and the node binaries are, which tools exist, and the skip
//!   rule (a missing tool skips a test with a printed reason, except under `CI=true`, where it
//!   fails); Debian packages are installed when missing and running as root.
//! - [`docker`]: a Docker CLI wrapper that names everything it creates after one run id and
//!   removes it all on drop (containers, networks, images).
//! - [`image`]: builds the image from `deploy/Dockerfile` on a machine without a registry:
//!   a Debian root filesystem made with debootstrap (cached under `/var/tmp`) is imported as
//!   the runtime base, binaries built on the host go into a `FROM scratch` image, and the
//!   Dockerfile's own `runtime` stage is built on top of both.
//! - [`compose`]: brings up the node services of `deploy/docker-compose.yml` with
//!   `docker-compose`, on a network the test owns and without publishing host ports.
//! - [`turn`]: a TURN client over UDP, just enough to allocate and relay data.
//! - [`promql`] and [`exposition`]: metric names used by queries and names a node exports, for
//!   checking the dashboard and rules against the real binaries.
//! - [`prometheus`]: runs the Debian package's `prometheus` on loopback against the deploy
//!   configuration and reads results back through its HTTP API.
//! - [`nodes`]: starts the relay and rendezvous binaries on loopback (no Docker needed).
//!
//! Every network exchange goes to loopback or to containers on a Docker network the test
//! created itself; every wait is bounded.

pub mod compose;
pub mod docker;
pub mod env;
pub mod exposition;
pub mod http;
pub mod image;
pub mod nodes;
pub mod prometheus;
pub mod promql;
pub mod turn;
