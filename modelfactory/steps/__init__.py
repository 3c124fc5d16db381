"""Pipeline steps as plain functions over files: what each KFP component calls, and nothing more.

Each step reads its inputs from paths, writes its outputs to paths and returns
the metadata the component attaches to its output artifacts. They run the same
in a kfp local subprocess, in a container on the cluster, and in a unit test.
"""
