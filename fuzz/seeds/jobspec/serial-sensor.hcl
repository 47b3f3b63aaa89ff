# Read a sensor on a USB serial adapter. The job asks for any serial device
# made by FTDI (USB vendor id 0403); the scheduler places it on a node that
# has one free, and the exec driver lets the task open that one /dev node
# and no other device.
job "sensor-reader" {
  type = "service"

  group "reader" {
    task "read" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "stty -F \"$WREN_DEVICE_PATH\" 9600 raw && exec cat \"$WREN_DEVICE_PATH\""]
      }

      resources {
        cpu    = 50
        memory = 16

        device "serial" {
          count = 1

          constraint {
            attribute = "${device.attr.usb_vendor_id}"
            value     = "0403"
          }
        }
      }
    }
  }
}
