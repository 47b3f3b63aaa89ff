# Ask for a GPU: the scheduler only places this on a node that fingerprinted
# an NVIDIA GPU with at least 4 GiB of memory, hands that GPU's device nodes
# to the task, and allows no other GPU.
job "inference" {
  type = "batch"

  group "infer" {
    task "infer" {
      driver = "exec"

      config {
        command = "/usr/bin/nvidia-smi"
        args    = ["-L"]
      }

      resources {
        cpu    = 500
        memory = 512

        device "nvidia/gpu" {
          count = 1

          constraint {
            attribute = "${device.attr.memory}"
            operator  = ">="
            value     = "4 GiB"
          }
        }
      }
    }
  }
}
