# Bedrock itself on Nomad: the web process (UI, GraphQL API, the hooks' endpoints) and the worker
# (django-q2, which starts a supervisor per run; BEDROCK_EXECUTOR=nomad sends each step to Nomad
# as a batch job of its own). Both run the image built from deploy/Dockerfile, which is also the
# image of the step jobs' fetch and upload tasks.
#
#   nomad var put nomad/jobs/bedrock DATABASE_URL=… BEDROCK_SECRET_KEYS=… \
#       BEDROCK_DJANGO_SECRET_KEY=… NOMAD_TOKEN=…
#   nomad job run -var image=registry.example.com/bedrock:1.0 \
#       -var hostname=bedrock.example.com -var nomad_addr=https://nomad.example.com:4646 \
#       deploy/bedrock.nomad.hcl
#
# Secrets come from the Nomad Variable nomad/jobs/bedrock, which this job's tasks may read
# without any policy; never `env`, which `nomad job inspect` shows. Each is rendered into a file
# of its own in the task's secrets/ directory and read through its *_FILE setting: an env-file
# template would not do, since Nomad's env parser reads an unquoted `#` as a comment and refuses
# stray quotes, which Django secret keys and database passwords contain.

variable "image" {
  type        = string
  description = "Bedrock's image, built from deploy/Dockerfile, where the Nomad clients pull it."
  default     = "bedrock:latest"
}

variable "hostname" {
  type        = string
  description = "The host name users and step jobs reach Bedrock at (behind your load balancer)."
}

variable "nomad_addr" {
  type        = string
  description = "The Nomad HTTP API the worker submits step jobs to."
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "artefacts_volume" {
  type        = string
  description = <<-EOT
    A host volume (client `host_volume` block) both groups mount as the local artefact storage,
    so it must be the same files on every node that runs them: NFS, say. Owned by uid 10001.
  EOT
  default     = "bedrock-artefacts"
}

locals {
  # Settings both groups share. Web stores the steps' uploads and the worker publishes model
  # versions, so both must see one artefact storage: the shared host volume below.
  settings = {
    BEDROCK_EXECUTOR             = "nomad"
    BEDROCK_API_DOMAIN           = "https://${var.hostname}"
    BEDROCK_CSRF_TRUSTED_ORIGINS = "https://${var.hostname}"
    BEDROCK_NOMAD_HOOK_IMAGE     = var.image
    NOMAD_ADDR                   = var.nomad_addr
    NOMAD_DATACENTERS            = join(",", var.datacenters)
  }
  # The items of nomad/jobs/bedrock, each read by Bedrock from /secrets/<item> as <item>_FILE.
  secrets = ["DATABASE_URL", "BEDROCK_SECRET_KEYS", "BEDROCK_DJANGO_SECRET_KEY", "NOMAD_TOKEN"]
  env = merge(local.settings, { for name in local.secrets : "${name}_FILE" => "/secrets/${name}" })
}

job "bedrock" {
  type        = "service"
  datacenters = var.datacenters

  group "web" {
    count = 1

    volume "artefacts" {
      type   = "host"
      source = var.artefacts_volume
    }

    network {
      port "http" {
        to = 8000
      }
    }

    ephemeral_disk {
      size   = 4096
      sticky = true # the Git cache under BEDROCK_HOME survives an update
    }

    service {
      name     = "bedrock-web"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/login/"
        interval = "10s"
        timeout  = "5s"
      }
    }

    # Migrations run before each deployment's web process; the worker waits for the tables by
    # restarting until they exist.
    task "migrate" {
      driver = "docker"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      config {
        image   = var.image
        command = "bedrock"
        args    = ["migrate", "--noinput"]
      }

      env = local.env

      dynamic "template" {
        for_each = local.secrets
        content {
          # Field access: a missing item fails the task (with `index` it would render empty).
          data                 = "{{ with nomadVar \"nomad/jobs/bedrock\" }}{{ .${template.value} }}{{ end }}"
          destination          = "secrets/${template.value}"
          change_mode          = "noop"
          uid                  = 10001 # the image's USER (deploy/Dockerfile)
          gid                  = 10001
          perms                = "0400"
          error_on_missing_key = true
        }
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }

    task "web" {
      driver = "docker"

      volume_mount {
        volume      = "artefacts"
        destination = "/var/lib/bedrock/artefacts"
      }

      config {
        image   = var.image
        command = "gunicorn"
        args = [
          "bedrock.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3",
          # Uploads of artefacts are unpacked and stored before the answer.
          "--timeout", "900", "--access-logfile", "-",
        ]
        ports = ["http"]
      }

      # The health check arrives with the allocation's address as its Host header.
      env = merge(local.env, {
        BEDROCK_ALLOWED_HOSTS = "${var.hostname},${NOMAD_IP_http}"
      })

      dynamic "template" {
        for_each = local.secrets
        content {
          # Field access: a missing item fails the task (with `index` it would render empty).
          data                 = "{{ with nomadVar \"nomad/jobs/bedrock\" }}{{ .${template.value} }}{{ end }}"
          destination          = "secrets/${template.value}"
          change_mode          = "restart"
          uid                  = 10001 # the image's USER (deploy/Dockerfile)
          gid                  = 10001
          perms                = "0400"
          error_on_missing_key = true
        }
      }

      resources {
        cpu    = 1000
        memory = 2048
      }

      kill_timeout = "30s"
    }
  }

  group "worker" {
    count = 1

    volume "artefacts" {
      type   = "host"
      source = var.artefacts_volume
    }

    ephemeral_disk {
      size   = 10240
      sticky = true
    }

    restart {
      attempts = 10
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    task "worker" {
      driver = "docker"

      volume_mount {
        volume      = "artefacts"
        destination = "/var/lib/bedrock/artefacts"
      }

      config {
        image   = var.image
        command = "bedrock"
        args    = ["qcluster"]
      }

      env = local.env

      dynamic "template" {
        for_each = local.secrets
        content {
          # Field access: a missing item fails the task (with `index` it would render empty).
          data                 = "{{ with nomadVar \"nomad/jobs/bedrock\" }}{{ .${template.value} }}{{ end }}"
          destination          = "secrets/${template.value}"
          change_mode          = "restart"
          uid                  = 10001 # the image's USER (deploy/Dockerfile)
          gid                  = 10001
          perms                = "0400"
          error_on_missing_key = true
        }
      }

      resources {
        cpu    = 2000
        memory = 2048
      }

      # Supervisors are detached processes in this container; give them time to record state.
      # Nomad caps it at the client's max_kill_timeout, 30s unless the client raises it.
      kill_timeout = "30s"
    }
  }
}
