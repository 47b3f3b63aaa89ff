# After Nomad's "HCL2 input variables" page.
variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "image_version" {
  type        = string
  description = "the version of the binary to run"
  default     = "1.2.3"
}

locals {
  binary = "/opt/app/${var.image_version}/bin/app"
}

job "docs" {
  datacenters = var.datacenters

  group "example" {
    task "server" {
      driver = "exec"

      config {
        command = local.binary
        args = [
          "-listen", ":${NOMAD_PORT_http}",
        ]
      }

      env {
        VERSION = var.image_version
      }

      logs {
        max_files     = 3
        max_file_size = 5
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "20s"
    }

    network {
      port "http" {
        static = 8080
      }
    }

    ephemeral_disk {
      size   = 500
      sticky = true
    }
  }
}
