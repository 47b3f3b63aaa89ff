# A system job: one allocation on every eligible Linux node, including nodes
# that join later. Here, a node monitor that samples the load average.
job "node-monitor" {
  type = "system"

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  group "monitor" {
    task "loadavg" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do echo \"$(cat /proc/loadavg) on ${node.unique.name}\"; sleep 10; done"]
      }

      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
