# After Nomad's "system scheduler" page: one log shipper per node.
job "log-shipper" {
  datacenters = ["dc1", "dc2"]
  type        = "system"

  update {
    max_parallel = 1
    stagger      = "10s"
  }

  group "shipper" {
    restart {
      attempts = 10
      interval = "5m"
      delay    = "25s"
      mode     = "delay"
    }

    task "shipper" {
      driver = "exec"

      config {
        command = "/usr/local/bin/ship-logs"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
