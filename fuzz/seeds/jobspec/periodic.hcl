# After Nomad's "periodic block" page.
job "docs" {
  datacenters = ["dc1"]
  type        = "batch"

  periodic {
    crons            = ["*/15 * * * * *"]
    prohibit_overlap = true
    time_zone        = "America/New_York"
  }

  group "example" {
    task "report" {
      driver = "exec"

      config {
        command = "/bin/date"
      }
    }
  }
}
