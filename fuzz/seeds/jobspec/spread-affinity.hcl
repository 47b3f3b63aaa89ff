# After Nomad's "spread block" and "affinity block" pages.
job "docs" {
  datacenters = ["us-east1", "us-east2"]

  spread {
    attribute = "${node.datacenter}"
    weight    = 100
  }

  affinity {
    attribute = "${node.datacenter}"
    value     = "us-west1"
    weight    = 100
  }

  group "example" {
    count = 10

    spread {
      attribute = "${meta.rack}"
      target "r1" {
        percent = 60
      }
      target "r2" {
        percent = 40
      }
    }

    affinity {
      attribute = "${meta.rack}"
      operator  = "set_contains_any"
      value     = "r1,r2"
      weight    = -50
    }

    task "server" {
      driver = "exec"
      config {
        command = "/bin/server"
      }
    }
  }
}
