# A long-running service under the exec driver: its own cgroup (cpu share,
# memory limit, pids limit), Landlock (read-only system, read-write task and
# alloc dirs), private PID/IPC/mount namespaces and an unprivileged user.
# It writes a heartbeat line with the port the scheduler gave it.
job "ticker" {
  type = "service"

  group "ticker" {
    count = 1

    network {
      port "http" {}
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "ticker" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args = ["-c", <<-EOT
          i=0
          while true; do
            i=$((i + 1))
            echo "tick $i on port $NOMAD_PORT_http"
            sleep 5
          done
        EOT
        ]
        pids_limit = 32
      }

      resources {
        cpu    = 100
        memory = 32
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "3s"

      logs {
        max_files     = 3
        max_file_size = 1
      }
    }
  }
}
