"""The DVC pipeline's library side: params, weights, samples and one function per stage.

Stage scripts under ``stages/`` are thin argparse wrappers over :mod:`furiosa.artifacts.pipeline.stages`.
"""
