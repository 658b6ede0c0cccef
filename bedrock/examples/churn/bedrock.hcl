// Bedrock example: churn prediction on synthetic customer data shipped in data/.
version = "1.0"

train {
  step "prepare" {
    image   = "python:3.11-slim"
    install = []
    script  = [{ sh = ["python3 prepare.py"] }]
    resources {
      cpu    = "0.5"
      memory = "256M"
    }
  }

  step "train" {
    image      = "python:3.11-slim"
    install    = ["pip install bdrk"]
    script     = [{ sh = ["python3 train.py"] }]
    depends_on = ["prepare"]
    resources {
      cpu    = "1"
      memory = "512M"
    }
    retry {
      limit = 1
    }
  }

  parameters {
    LEARNING_RATE = "0.5"
    EPOCHS        = "300"
    SEED          = "7"
  }
}

batch_score {
  step "score" {
    image  = "python:3.11-slim"
    script = [{ sh = ["python3 score.py"] }]
    resources {
      cpu    = "0.5"
      memory = "256M"
    }
  }

  parameters {
    THRESHOLD   = "0.5"
    OUTPUT_PATH = ""
  }
}
