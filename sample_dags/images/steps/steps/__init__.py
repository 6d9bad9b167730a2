"""Steps of the sample pipelines: each module is one CLI (`python -m steps.<step>`)."""

RECOMMEND = ("preprocess", "inference", "postprocess")
TRAIN_COMPARE_DEPLOY = ("extract", "features", "train", "deploy")
