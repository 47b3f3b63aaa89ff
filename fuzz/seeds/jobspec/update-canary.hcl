# After Nomad's "update block" page and the blue/green and canary guide.
job "docs" {
  datacenters = ["dc1"]

  update {
    max_parallel      = 3
    health_check      = "task_states"
    min_healthy_time  = "15s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = true
    auto_promote      = true
    canary            = 1
    stagger           = "30s"
  }

  group "api-server" {
    count = 3

    update {
      max_parallel = 1
      canary       = 3
    }

    task "api-server" {
      driver = "exec"
      config {
        command = "/usr/local/bin/api-server"
      }
    }
  }
}
