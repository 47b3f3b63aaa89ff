//! Talking to the region from the CLI: a wire client made from the
//! connection flags (see `crate::wire::client`), driven by a one-thread
//! executor on the command's own thread, and error answers turned into
//! messages a person reads.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use minicbor::{Decode, Encode};
use serde::de::DeserializeOwned;
use smol::Executor;

use crate::wire::{ApiFlags, Client, ClientError, Method, Response};

/// A connection to the region for one command.
#[derive(Debug)]
pub struct Remote {
    ex: Arc<Executor<'static>>,
    client: Client,
}

/// A kind of object the CLI looks up by id or prefix (see [`Remote::find`]).
#[derive(Debug)]
pub struct Kind {
    /// The path of one object, without its id: `/v1/job`.
    pub one: &'static str,
    /// The listing: `/v1/jobs`.
    pub list: &'static str,
    /// For messages: `job`, `jobs`.
    pub noun: &'static str,
    /// The plural.
    pub plural: &'static str,
}

/// Whether an error is the server saying "not found".
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ClientError>(),
            Some(ClientError::Api(a)) if a.code == coap_lite::ResponseType::NotFound
        )
    })
}

impl Remote {
    /// Resolves the connection flags (flag, env, default files) and makes a
    /// client; nothing is dialled yet.
    pub fn connect(flags: &ApiFlags) -> anyhow::Result<Remote> {
        let config = flags
            .resolve()
            .context("finding the servers and the CLI's certificate")?;
        let ex = Arc::new(Executor::new());
        let client = Client::new(config, ex.clone()).context("setting up TLS")?;
        Ok(Remote { ex, client })
    }

    /// The client, for futures passed to [`Remote::run`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `fut` to completion, with the client's connection tasks.
    pub fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        smol::block_on(self.ex.run(fut))
    }

    /// GETs and decodes `path`.
    pub fn get<T>(&self, path: &str) -> anyhow::Result<T>
    where
        T: for<'b> Decode<'b, ()> + DeserializeOwned,
    {
        let (v, _) = self
            .run(self.client.get::<T>(path))
            .with_context(|| format!("GET {}", strip_query(path)))?;
        Ok(v)
    }

    /// An object by id, or by a unique id prefix: the exact id first,
    /// then the listing filtered by `?prefix=`. A prefix that matches no
    /// object or several is an error naming them. `kind` names the paths
    /// and the words for messages; `id_of` reads a listed stub's id.
    pub fn find<T, S>(
        &self,
        kind: &Kind,
        id: &str,
        stale: bool,
        id_of: impl Fn(&S) -> &str,
    ) -> anyhow::Result<T>
    where
        T: for<'b> Decode<'b, ()> + DeserializeOwned,
        S: for<'b> Decode<'b, ()> + DeserializeOwned,
    {
        let one = |id: &str| with_query(&format!("{}/{id}", kind.one), &[self::stale(stale)]);
        match self.get::<T>(&one(id)) {
            Err(e) if is_not_found(&e) => {}
            found => return found,
        }
        let stubs: Vec<S> = self.get(&with_query(
            kind.list,
            &[self::stale(stale), ("prefix", Some(id))],
        ))?;
        match stubs.as_slice() {
            [only] => self.get(&one(id_of(only))),
            [] => anyhow::bail!("no {} with id or prefix {id:?}", kind.noun),
            many => {
                let ids: Vec<&str> = many.iter().map(&id_of).collect();
                anyhow::bail!(
                    "prefix {id:?} matches {} {}: {}",
                    many.len(),
                    kind.plural,
                    ids.join(", ")
                )
            }
        }
    }

    /// Sends `body` (CBOR) to `path` and decodes the answer.
    pub fn send<B, T>(&self, method: Method, path: &str, body: &B) -> anyhow::Result<T>
    where
        B: Encode<()>,
        T: for<'b> Decode<'b, ()> + DeserializeOwned,
    {
        let (v, _) = self
            .run(self.client.send::<B, T>(method, path, body))
            .with_context(|| format!("{method:?} {}", strip_query(path)))?;
        Ok(v)
    }

    /// Sends raw bytes, never re-sending them once they went out (see
    /// [`Client::request_once`]); an error answer becomes an error.
    pub fn once(&self, method: Method, path: &str, body: &[u8]) -> anyhow::Result<Response> {
        let resp = self
            .run(self.client.request_once(method, path, body))
            .with_context(|| format!("{method:?} {}", strip_query(path)))?;
        match resp.as_error() {
            Some(e) => Err(anyhow::Error::new(ClientError::Api(e)))
                .with_context(|| format!("{method:?} {}", strip_query(path))),
            None => Ok(resp),
        }
    }
}

fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// `path` with query parameters appended (`?a=b&c`); values are taken as
/// they are (ids and numbers need no escaping).
pub fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let q: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| {
            v.map(|v| {
                if v.is_empty() {
                    k.to_string()
                } else {
                    format!("{k}={v}")
                }
            })
        })
        .collect();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// `?stale=true` when `stale`.
pub fn stale(stale: bool) -> (&'static str, Option<&'static str>) {
    ("stale", stale.then_some("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_appended_only_when_set() {
        assert_eq!(with_query("/v1/jobs", &[stale(false)]), "/v1/jobs");
        assert_eq!(
            with_query("/v1/jobs", &[stale(true), ("prefix", Some("we"))]),
            "/v1/jobs?stale=true&prefix=we"
        );
        assert_eq!(
            with_query("/v1/job/x", &[("purge", Some(""))]),
            "/v1/job/x?purge"
        );
    }
}
