# A virtual machine under the qemu driver: a Debian kernel and a busybox
# initramfs (built by images/test-vm/build), booted with software emulation
# so it also runs where KVM is unavailable. The guest's serial console goes
# to the task's logs; stopping the job powers the guest down over QMP.
#
#   images/test-vm/build        # prints the kernel and initrd paths
#   wren job run --var kernel=... --var initrd=... examples/qemu.hcl
variable "kernel" {
  type        = string
  description = "path to the guest kernel (vmlinuz)"
}

variable "initrd" {
  type        = string
  description = "path to the guest initramfs"
}

job "tiny-vm" {
  type = "service"

  constraint {
    attribute = "${attr.driver.qemu}"
    value     = "1"
  }

  group "vm" {
    network {
      port "ssh" {}
    }

    task "vm" {
      driver = "qemu"

      config {
        kernel            = var.kernel
        initrd            = var.initrd
        append            = "console=ttyS0 panic=-1"
        accelerator       = "tcg"
        graceful_shutdown = true
        port_map {
          ssh = 22
        }
      }

      resources {
        cpu    = 500
        memory = 256
      }

      kill_timeout = "20s"
    }
  }
}
