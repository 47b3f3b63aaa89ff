# After Nomad's "qemu task driver" page.
job "vm" {
  datacenters = ["dc1"]

  group "vm" {
    network {
      port "ssh" {}
    }

    task "webservice" {
      driver = "qemu"

      config {
        image_path        = "local/linux.img"
        accelerator       = "kvm"
        graceful_shutdown = true
        args              = ["-nodefaults", "-nodefconfig"]
        port_map {
          ssh = 22
        }
      }

      resources {
        cpu    = 1000
        memory = 512
      }

      kill_timeout = "30s"
    }
  }
}
