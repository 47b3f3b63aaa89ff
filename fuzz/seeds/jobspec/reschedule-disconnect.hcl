# After Nomad's "reschedule block" and "disconnect block" pages.
job "docs" {
  datacenters = ["dc1"]

  reschedule {
    delay          = "30s"
    delay_function = "exponential"
    max_delay      = "120s"
    unlimited      = true
  }

  group "example" {
    reschedule {
      attempts  = 15
      interval  = "1h"
      delay     = "30s"
      delay_function = "constant"
      unlimited = false
    }

    disconnect {
      lost_after = "6h"
      replace    = false
      reconcile  = "keep_original"
    }

    task "server" {
      driver = "exec"
      config {
        command = "/bin/server"
      }
    }
  }

  group "example2" {
    disconnect {
      stop_on_client_after = "12h"
      replace              = false
      reconcile            = "keep_original"
    }

    task "server" {
      driver = "exec"
      config {
        command = "/bin/server"
      }
    }
  }
}
