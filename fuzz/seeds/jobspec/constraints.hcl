# After Nomad's "constraint block" page: every form the page shows.
job "docs" {
  datacenters = ["dc1"]

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  constraint {
    attribute = "${attr.kernel.version}"
    version   = "> 3.19"
  }

  constraint {
    distinct_hosts = true
  }

  group "example" {
    count = 3

    constraint {
      attribute = "${meta.rack}"
      operator  = "distinct_property"
      value     = "2"
    }

    constraint {
      attribute = "${attr.os.name}"
      operator  = "regexp"
      value     = "[Dd]ebian|[Uu]buntu"
    }

    constraint {
      attribute = "${meta.cached_binaries}"
      set_contains = "redis,cypress,nginx"
    }

    constraint {
      attribute = "${attr.unique.network.ip-address}"
      operator  = "!="
      value     = "10.0.0.5"
    }

    constraint {
      attribute = "${meta.ssd}"
      operator  = "is_set"
    }

    task "server" {
      driver = "exec"

      constraint {
        attribute = "${attr.cpu.arch}"
        value     = "arm64"
      }

      config {
        command = "/bin/server"
      }
    }
  }
}
