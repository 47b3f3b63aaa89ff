//! `wren server members`: the region's servers, whether they answer, and
//! which one leads.

use std::process::ExitCode;

use argh::FromArgs;

use super::format::{self, columns};
use super::remote::Remote;
use crate::api::ServerMember;

/// Work with the region's servers.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "server")]
pub struct ServerCmd {
    #[argh(subcommand)]
    command: ServerSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum ServerSub {
    Members(MembersCmd),
}

crate::wire::api_command! {
    /// List the region's servers.
    #[argh(subcommand, name = "members")]
    pub struct MembersCmd {
        /// print JSON
        #[argh(switch)]
        json: bool,
    }
}

impl ServerCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            ServerSub::Members(cmd) => cmd.run(),
        }
    }
}

impl MembersCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let remote = Remote::connect(&self.api_flags())?;
        let members: Vec<ServerMember> = remote.get("/v1/agent/members")?;
        if self.json {
            format::print_json(&members);
        } else {
            print!("{}", table(&members));
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn table(members: &[ServerMember]) -> String {
    let mut rows = vec![
        [
            "Name",
            "Address",
            "Port",
            "Status",
            "Leader",
            "Raft ID",
            "Build",
            "Datacenter",
            "Region",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for m in members {
        let (host, port) = split_host_port(&m.address);
        rows.push(vec![
            m.name.clone(),
            host.to_owned(),
            port.to_owned(),
            m.status.clone(),
            m.leader.to_string(),
            m.raft_id.to_string(),
            m.version.clone(),
            m.datacenter.clone(),
            m.region.clone(),
        ]);
    }
    columns(&rows)
}

/// `10.0.0.1:5684` to (`10.0.0.1`, `5684`); `[::1]:5684` to (`::1`, `5684`).
pub fn split_host_port(addr: &str) -> (&str, &str) {
    match addr.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h.trim_start_matches('[').trim_end_matches(']'), p)
        }
        _ => (addr, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_print_host_and_port_apart() {
        assert_eq!(split_host_port("10.0.0.1:5684"), ("10.0.0.1", "5684"));
        assert_eq!(split_host_port("[::1]:9"), ("::1", "9"));
        let t = table(&[ServerMember {
            name: "s1".into(),
            address: "10.0.0.1:5684".into(),
            region: "global".into(),
            datacenter: "dc1".into(),
            status: "alive".into(),
            leader: true,
            raft_id: 7,
            version: "0.1.0".into(),
        }]);
        assert_eq!(
            t.lines().nth(1),
            Some("s1    10.0.0.1  5684  alive   true    7        0.1.0  dc1         global")
        );
    }
}
