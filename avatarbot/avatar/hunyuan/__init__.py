"""HunyuanVideo-Avatar on a GPU: model, pipeline, checkpoint converter and loader.

Kept light on purpose: importing this package pulls in no torch, so `avatarbot doctor` and the
bots can ask about weights (`weights.check_weights`) on machines without the gpu extra. The heavy
modules (`model`, `pipeline`, `engine`, `convert`) import torch themselves.
"""
