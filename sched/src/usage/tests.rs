//! Resource accounting: grants, exhaustion per dimension, overlaps.

use super::*;
use wren_model::{
    NetworkResource, NodeDevice, NodeNetwork, Port, RequestedDevice, Resources, Task, TaskGroup,
};

fn node() -> Node {
    let mut n = Node {
        id: "n1".into(),
        ..Node::default()
    };
    n.resources.cpu = 4000;
    n.resources.cores = 4;
    n.resources.memory_mb = 4096;
    n.resources.disk_mb = 10_000;
    n.reserved.cores = vec![0];
    n.reserved.ports = "22, 20000-20010, bogus".into();
    n.resources.min_dynamic_port = 20_000;
    n.resources.max_dynamic_port = 20_012;
    n.resources.networks = vec![NodeNetwork {
        device: "eth0".into(),
        ip: "10.0.0.5".into(),
        host_network: "default".into(),
    }];
    n.resources.devices = vec![NodeDeviceResource {
        vendor: "nvidia".into(),
        device_type: "gpu".into(),
        name: "T4".into(),
        instances: vec![
            NodeDevice {
                id: "g0".into(),
                healthy: true,
                ..NodeDevice::default()
            },
            NodeDevice {
                id: "g1".into(),
                healthy: false,
                ..NodeDevice::default()
            },
            NodeDevice {
                id: "g2".into(),
                healthy: true,
                ..NodeDevice::default()
            },
        ],
        ..NodeDeviceResource::default()
    }];
    n
}

fn group(cpu: u32, cores: u32, mem: u64, gpus: u32, ports: (usize, usize)) -> TaskGroup {
    TaskGroup {
        name: "g".into(),
        tasks: vec![Task {
            name: "t".into(),
            resources: Resources {
                cpu,
                cores,
                memory_mb: mem,
                devices: (gpus > 0)
                    .then(|| RequestedDevice {
                        name: "nvidia/gpu".into(),
                        count: gpus,
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Resources::default()
            },
            ..Task::default()
        }],
        networks: vec![NetworkResource {
            reserved_ports: (0..ports.0)
                .map(|i| Port {
                    label: format!("r{i}"),
                    value: 8080 + i as u16,
                    ..Port::default()
                })
                .collect(),
            dynamic_ports: (0..ports.1)
                .map(|i| Port {
                    label: format!("d{i}"),
                    ..Port::default()
                })
                .collect(),
            ..NetworkResource::default()
        }],
        ..TaskGroup::default()
    }
}

#[test]
fn grants_cores_devices_ports_and_runs_out() {
    let n = node();
    let reserved = parse_port_ranges(&n.reserved.ports);
    assert_eq!(reserved, vec![(22, 22), (20_000, 20_010)]);
    let mut rng = Rng::new(1);
    let mut u = NodeUsage::new(&n);
    let ask = Ask::new(&group(0, 2, 1024, 1, (1, 1)));
    let got = u.fit(&n, &ask, &reserved, &mut rng).unwrap();
    let t = &got.tasks["t"];
    assert_eq!(t.cores, vec![1, 2], "core 0 is reserved");
    assert_eq!(t.cpu, 2000, "two cores' worth of MHz");
    assert_eq!(t.devices[0].device_ids, vec!["g0"]);
    assert_eq!(got.ports[0].value, 8080);
    assert!(
        matches!(got.ports[1].value, 20_011 | 20_012),
        "{:?}",
        got.ports
    );
    assert_eq!(got.ports[0].host_ip, "10.0.0.5");
    u.add(&n, &got).unwrap();

    let again = u.fit(&n, &ask, &reserved, &mut rng);
    assert_eq!(again, Err(Exhausted::Cores), "only core 3 is left");
    let one_core = Ask::new(&group(0, 1, 100, 1, (0, 1)));
    let got2 = u.fit(&n, &one_core, &reserved, &mut rng).unwrap();
    assert_eq!(
        got2.tasks["t"].devices[0].device_ids,
        vec!["g2"],
        "g1 is unhealthy"
    );
    u.add(&n, &got2).unwrap();
    let gpu = Ask::new(&group(10, 0, 10, 1, (0, 0)));
    assert_eq!(
        u.fit(&n, &gpu, &reserved, &mut rng),
        Err(Exhausted::Device(0))
    );
    let port = Ask::new(&group(10, 0, 10, 0, (1, 0)));
    assert_eq!(
        u.fit(&n, &port, &reserved, &mut rng),
        Err(Exhausted::ReservedPort(8080))
    );
    let dynamic = Ask::new(&group(10, 0, 10, 0, (0, 1)));
    assert_eq!(
        u.fit(&n, &dynamic, &reserved, &mut rng),
        Err(Exhausted::DynamicPorts)
    );
    let mem = Ask::new(&group(10, 0, 4000, 0, (0, 0)));
    assert_eq!(u.fit(&n, &mem, &reserved, &mut rng), Err(Exhausted::Memory));
    let cpu = Ask::new(&group(3000, 0, 10, 0, (0, 0)));
    assert_eq!(u.fit(&n, &cpu, &reserved, &mut rng), Err(Exhausted::Cpu));

    u.remove(&n, &got);
    assert!(
        u.fit(&n, &ask, &reserved, &mut rng).is_ok(),
        "freed by remove"
    );
}

#[test]
fn overlaps_are_reported() {
    let n = node();
    let mut u = NodeUsage::new(&n);
    let res = AllocatedResources {
        tasks: VecMap::from([(
            "t".into(),
            AllocatedTaskResources {
                cores: vec![0],
                ..Default::default()
            },
        )]),
        ..Default::default()
    };
    assert_eq!(u.add(&n, &res), Err(Overlap::Core(0)), "core 0 is reserved");
    let ports = AllocatedResources {
        ports: vec![AllocatedPort {
            value: 22,
            ..Default::default()
        }],
        ..Default::default()
    };
    u.add(&n, &ports).unwrap();
    assert_eq!(
        u.outside_node(&n, &parse_port_ranges("22")),
        Some(Overlap::Port(22))
    );
    assert_eq!(u.add(&n, &ports), Err(Overlap::Port(22)));
}
