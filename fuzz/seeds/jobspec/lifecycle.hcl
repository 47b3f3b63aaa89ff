# After Nomad's "lifecycle block" page and the task dependencies guide.
job "app" {
  datacenters = ["dc1"]

  group "app" {
    task "init" {
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      driver = "exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo waiting for the database; sleep 2"]
      }
    }

    task "log-forwarder" {
      lifecycle {
        hook    = "poststart"
        sidecar = true
      }

      driver = "exec"
      config {
        command = "/usr/local/bin/forward-logs"
      }
    }

    task "main" {
      driver = "exec"
      leader = true
      config {
        command = "/usr/local/bin/app"
      }
    }

    task "cleanup" {
      lifecycle {
        hook = "poststop"
      }
      driver = "exec"
      config {
        command = "/usr/local/bin/cleanup"
      }
    }
  }
}
