# The smallest useful job: raw_exec runs a command with no isolation
# (enabled on the dev agent, like Nomad's). A batch job: it runs once and
# completes.
#
#   wren job run examples/hello.hcl
#   wren alloc logs <alloc-id>
job "hello" {
  type = "batch"

  group "hello" {
    task "hello" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo \"hello from wren on $(uname -m), alloc $WREN_ALLOC_ID\""]
      }

      resources {
        cpu    = 50
        memory = 16
      }
    }
  }
}
