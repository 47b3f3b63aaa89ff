# After Nomad's "device block" page and the NVIDIA device plugin page.
job "gpu-test" {
  datacenters = ["dc1"]
  type        = "batch"

  group "smi" {
    task "smi" {
      driver = "exec"

      config {
        command = "nvidia-smi"
      }

      resources {
        device "nvidia/gpu" {
          count = 2

          constraint {
            attribute = "${device.attr.memory}"
            operator  = ">="
            value     = "2 GiB"
          }

          affinity {
            attribute = "${device.attr.memory}"
            operator  = ">="
            value     = "4 GiB"
            weight    = 75
          }
        }
      }
    }
  }
}
