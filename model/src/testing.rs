//! Round-trip property tests: every type, generated at random (with the
//! `arbitrary` crate, so sizes are bounded by the input length), encodes to
//! CBOR and JSON and decodes back unchanged.

use std::collections::BTreeMap;
use std::fmt::Debug;

use arbitrary::{Arbitrary, Unstructured};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::value::Value;
use crate::*;

/// A finite float (NaN never equals itself; JSON has no infinities).
pub fn finite(u: &mut Unstructured<'_>) -> arbitrary::Result<f64> {
    let f = f64::arbitrary(u)?;
    Ok(if f.is_finite() { f } else { 0.0 })
}

/// A map of finite floats.
pub fn finite_map(u: &mut Unstructured<'_>) -> arbitrary::Result<VecMap<String, f64>> {
    let mut m = VecMap::new();
    for _ in 0..u.arbitrary_len::<(String, u64)>()?.min(4) {
        m.insert(String::arbitrary(u)?, finite(u)?);
    }
    Ok(m)
}

fn arbitrary_value(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Value> {
    let max = if depth >= 4 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=max - 1)? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => Value::Int(i64::arbitrary(u)?),
        3 => Value::Float(finite(u)?),
        4 => Value::String(String::arbitrary(u)?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            Value::List(
                (0..n)
                    .map(|_| arbitrary_value(u, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut m = BTreeMap::new();
            for _ in 0..n {
                m.insert(String::arbitrary(u)?, arbitrary_value(u, depth + 1)?);
            }
            Value::Map(m)
        }
    })
}

impl<'a> Arbitrary<'a> for Value {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        arbitrary_value(u, 0)
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn round_trip<T>()
where
    T: for<'a> Arbitrary<'a>
        + for<'b> minicbor::Decode<'b, ()>
        + minicbor::Encode<()>
        + Serialize
        + DeserializeOwned
        + PartialEq
        + Debug,
{
    for seed in 0..64u64 {
        for len in [64, 512, 4096] {
            let data = bytes(seed, len);
            let Ok(value) = T::arbitrary(&mut Unstructured::new(&data)) else {
                continue;
            };
            let cbor = codec::to_cbor(&value);
            let back: T =
                codec::from_cbor(&cbor).unwrap_or_else(|e| panic!("seed {seed}/{len}: cbor: {e}"));
            assert_eq!(back, value, "seed {seed}/{len}: cbor round trip");
            let json = codec::to_json(&value);
            let back: T =
                codec::from_json(&json).unwrap_or_else(|e| panic!("seed {seed}/{len}: json: {e}"));
            assert_eq!(back, value, "seed {seed}/{len}: json round trip");
        }
    }
}

macro_rules! round_trip_tests {
    ($($name:ident: $ty:ty),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                round_trip::<$ty>();
            }
        )+
    };
}

round_trip_tests! {
    job: Job,
    task_group: TaskGroup,
    task: Task,
    resources: Resources,
    requested_device: RequestedDevice,
    constraint: Constraint,
    affinity: Affinity,
    spread: Spread,
    restart_policy: RestartPolicy,
    reschedule_policy: ReschedulePolicy,
    update_strategy: UpdateStrategy,
    migrate_strategy: MigrateStrategy,
    disconnect_strategy: DisconnectStrategy,
    lifecycle: Lifecycle,
    log_config: LogConfig,
    periodic: Periodic,
    parameterized: Parameterized,
    network_resource: NetworkResource,
    port: Port,
    ephemeral_disk: EphemeralDisk,
    node: Node,
    node_resources: NodeResources,
    node_reserved: NodeReserved,
    node_device_resource: NodeDeviceResource,
    driver_info: DriverInfo,
    drain_strategy: DrainStrategy,
    allocation: Allocation,
    allocated_resources: AllocatedResources,
    task_state: TaskState,
    task_event: TaskEvent,
    evaluation: Evaluation,
    alloc_metric: AllocMetric,
    deployment: Deployment,
    deployment_status_update: DeploymentStatusUpdate,
    plan: Plan,
    plan_result: PlanResult,
    plan_annotations: PlanAnnotations,
    value: Value,
    duration: Duration,
}

#[test]
fn generated_values_are_not_all_trivial() {
    // Guard against a generator that only ever yields defaults.
    let data = bytes(7, 4096);
    let job = Job::arbitrary(&mut Unstructured::new(&data)).unwrap();
    assert_ne!(job, Job::default());
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    // A newer peer adds field 99 to a constraint: we still decode it.
    let mut e = minicbor::Encoder::new(Vec::new());
    e.map(4).unwrap();
    e.u32(0).unwrap().str("${attr.cpu.arch}").unwrap();
    e.u32(1).unwrap().u32(0).unwrap();
    e.u32(2).unwrap().str("arm64").unwrap();
    e.u32(99)
        .unwrap()
        .array(2)
        .unwrap()
        .u8(1)
        .unwrap()
        .u8(2)
        .unwrap();
    let c: Constraint = codec::from_cbor(&e.into_writer()).unwrap();
    assert_eq!(
        c,
        Constraint::new("${attr.cpu.arch}", Operator::Eq, "arm64")
    );
}
