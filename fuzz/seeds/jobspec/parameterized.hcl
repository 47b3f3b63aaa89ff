# After Nomad's "parameterized block" page.
job "video-encode" {
  datacenters = ["dc1"]
  type        = "batch"

  parameterized {
    payload       = "required"
    meta_required = ["dispatcher_email"]
    meta_optional = ["pager_email"]
  }

  group "encode" {
    task "ffmpeg" {
      driver = "exec"

      config {
        command = "/usr/bin/ffmpeg-wrapper"
        args    = ["${NOMAD_META_dispatcher_email}"]
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
