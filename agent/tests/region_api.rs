//! The `/v1` API of a region running in this process, over the real wire:
//! servers validate what they are sent, followers forward writes and serve
//! consistent reads, blocking queries wake on the next change, and client
//! agents' certificates do not reach the operators' endpoints.

mod region_support;

use std::time::Duration;

use coap_lite::ResponseType;
use region_support::InProcRegion;
use wren_agent::api::{JobListStub, JobRegisterRequest, JobRegisterResponse};
use wren_agent::wire::{Client, ClientError, JSON, Method, Role};
use wren_model::Job;
use wren_state::Durability;

fn job(id: &str, value: &str) -> Job {
    let text = format!(
        r#"job "{id}" {{
  meta {{ v = "{value}" }}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/true"
      }}
    }}
  }}
}}
"#
    );
    wren_model::jobspec::parse("job.hcl", &text).expect("a valid job")
}

fn submit(
    region: &InProcRegion,
    client: &Client,
    j: Job,
) -> Result<JobRegisterResponse, ClientError> {
    region_run(region, async {
        client
            .send::<_, JobRegisterResponse>(
                Method::Post,
                "/v1/jobs",
                &JobRegisterRequest {
                    job: j,
                    enforce_index: None,
                },
            )
            .await
            .map(|(r, _)| r)
    })
}

fn region_run<T>(region: &InProcRegion, fut: impl Future<Output = T>) -> T {
    smol::block_on(region.client_executor().run(fut))
}

fn api_code(e: &ClientError) -> Option<ResponseType> {
    match e {
        ClientError::Api(a) => Some(a.code),
        _ => None,
    }
}

#[test]
fn servers_validate_jobs_and_followers_forward_writes_and_read_consistently() {
    let region = InProcRegion::start("validate", 3, Durability::PowerLoss);
    let leader = region.wait_for_leader(Duration::from_secs(30));
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let a = region.client(Role::Cli, &followers[..1]);
    let b = region.client(Role::Cli, &followers[1..]);

    // A job the CLI would never send: no groups, priority out of range.
    let bad = Job {
        id: "bad".into(),
        priority: 0,
        ..Job::default()
    };
    let e = submit(&region, &a, bad).unwrap_err();
    assert_eq!(api_code(&e), Some(ResponseType::BadRequest), "{e}");
    assert!(e.to_string().contains("job \"bad\" is invalid"), "{e}");
    // Another region's job.
    let mut other = job("other", "1");
    other.region = "eu".into();
    let e = submit(&region, &a, other).unwrap_err();
    assert!(e.to_string().contains("is for region \"eu\""), "{e}");

    // Written through one follower, read consistently through the other.
    let r = submit(&region, &a, job("web", "1")).unwrap();
    assert_eq!(r.version, 0);
    assert!(r.eval_id.is_some() && r.index > 0 && r.job_modify_index == r.index);
    let (got, index) = region_run(&region, b.get::<Job>("/v1/job/web")).unwrap();
    assert_eq!(got.meta.get("v").map(String::as_str), Some("1"));
    assert!(index.unwrap_or(0) >= r.index);
    // The evaluation the server built for it.
    let (eval, _) = region_run(
        &region,
        b.get::<wren_model::Evaluation>(&format!("/v1/eval/{}", r.eval_id.unwrap())),
    )
    .unwrap();
    assert_eq!(eval.job_id, "web");
    assert_eq!(eval.triggered_by, wren_model::TriggeredBy::JobRegister);
    // Pending, or already handled by the servers' scheduler (there are no
    // nodes, so it places nothing).
    assert!(
        matches!(
            eval.status,
            wren_model::EvalStatus::Pending | wren_model::EvalStatus::Complete
        ),
        "{:?}",
        eval.status
    );
    assert_eq!(eval.job_modify_index, r.job_modify_index);
    assert!(eval.create_time > 0);

    // JSON in, JSON out, as a stock CoAP client would do it.
    let body = serde_json::to_vec(&JobRegisterRequest {
        job: job("json", "2"),
        enforce_index: Some(0),
    })
    .unwrap();
    let resp = region_run(
        &region,
        a.request_as(Method::Post, "/v1/jobs", &body, JSON, JSON),
    )
    .unwrap();
    assert!(resp.is_success(), "{:?}", resp.as_error());
    let r: JobRegisterResponse = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(r.version, 0);
    // Check-and-set: registering "only if new" again is a conflict.
    let e = region_run(&region, async {
        a.send::<_, JobRegisterResponse>(
            Method::Post,
            "/v1/jobs",
            &JobRegisterRequest {
                job: job("json", "3"),
                enforce_index: Some(0),
            },
        )
        .await
    })
    .unwrap_err();
    assert_eq!(api_code(&e), Some(ResponseType::Conflict), "{e}");

    // A client agent's certificate does not reach the operators' API.
    let agent = region.client(Role::Client, &[leader]);
    let e = region_run(&region, agent.get::<Vec<JobListStub>>("/v1/jobs")).unwrap_err();
    assert_eq!(api_code(&e), Some(ResponseType::Forbidden), "{e}");
    region.stop();
}

#[test]
fn a_blocking_query_wakes_on_the_next_change() {
    let region = InProcRegion::start("blocking", 1, Durability::None);
    let cli = region.client(Role::Cli, &[0]);
    let r = submit(&region, &cli, job("first", "1")).unwrap();
    let jobs = region_run(&region, async {
        let mut obs = cli.observe("/v1/jobs");
        let first = obs.next().await.unwrap().unwrap();
        let stubs: Vec<JobListStub> = first.decode().unwrap();
        assert_eq!(stubs.len(), 1);
        assert!(first.index.unwrap() >= r.index);
        // The next notification comes with the next job.
        let writer = cli.clone();
        let write = async move {
            smol::Timer::after(Duration::from_millis(200)).await;
            writer
                .send::<_, JobRegisterResponse>(
                    Method::Post,
                    "/v1/jobs",
                    &JobRegisterRequest {
                        job: job("second", "2"),
                        enforce_index: None,
                    },
                )
                .await
                .unwrap()
        };
        let (next, _) = smol::future::zip(obs.next(), write).await;
        let next = next.unwrap().unwrap();
        assert!(next.index.unwrap() > first.index.unwrap());
        next.decode::<Vec<JobListStub>>().unwrap()
    });
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["first", "second"]);

    // `?index=N` on a plain GET answers with what changed after N.
    let (stubs, index) = region_run(
        &region,
        cli.get::<Vec<JobListStub>>(&format!("/v1/jobs?index={}&wait=5s", r.index)),
    )
    .unwrap();
    assert_eq!(stubs.len(), 2);
    assert!(index.unwrap() > r.index);
    region.stop();
}
