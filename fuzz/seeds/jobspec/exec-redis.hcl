# After Nomad's "exec task driver" page and the getting-started example job.
job "example" {
  datacenters = ["dc1"]

  group "cache" {
    network {
      port "db" {
        to = 6379
      }
    }

    task "redis" {
      driver = "exec"

      config {
        command = "/usr/bin/redis-server"
        args    = ["--port", "${NOMAD_PORT_db}"]
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
