# A batch job of three allocations, spread over nodes where possible; each
# computes something small and exits. Completed allocations are not
# replaced; a failed one is restarted up to twice on its node. Each writes
# its sum into the allocation's shared data dir (alloc/data: the exec
# driver lets a task write there, in alloc/tmp and in its own dir only).
job "checksums" {
  type = "batch"

  group "sum" {
    count = 3

    restart {
      attempts = 2
      delay    = "5s"
      interval = "1m"
      mode     = "fail"
    }

    task "sum" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "head -c 4M /dev/urandom | sha256sum > \"$NOMAD_ALLOC_DIR/data/sum-$NOMAD_ALLOC_INDEX\" && cat \"$NOMAD_ALLOC_DIR/data/sum-$NOMAD_ALLOC_INDEX\""]
      }

      resources {
        cpu    = 200
        memory = 32
      }
    }
  }
}
