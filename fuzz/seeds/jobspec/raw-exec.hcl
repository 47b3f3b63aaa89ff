# After Nomad's "raw_exec task driver" page.
job "raw-exec-example" {
  datacenters = ["dc1"]
  type        = "batch"

  group "group" {
    task "windows-or-linux" {
      driver = "raw_exec"

      config {
        command = "/bin/sleep"
        args    = ["1"]
      }
    }
  }
}
