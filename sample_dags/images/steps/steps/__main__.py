"""`python -m steps` (the image's default command) lists the steps instead of doing anything."""

from steps import RECOMMEND, TRAIN_COMPARE_DEPLOY

print("run one step: python -m steps.<step> --date YYYY-MM-DD --input C/PATH --output C/PATH")
print("steps:", " ".join(RECOMMEND + TRAIN_COMPARE_DEPLOY))
