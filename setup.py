"""sepmamba_sb: SepMamba (arXiv 2410.20997) as a SpeechBrain plugin.

``pip install -e .`` never builds or downloads mamba-ssm / causal-conv1d and needs no nvcc: the C++
CPU kernel is compiled on first use (``python -m sepmamba_sb.ops`` does it up front). On a GPU
machine, ``pip install --no-build-isolation -e .[cuda]`` adds mamba-ssm's CUDA kernels.
"""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="sepmamba_sb",
    version="0.1.0",
    description="SepMamba speech separation (Mamba U-Net) for SpeechBrain, with CPU and CUDA kernels",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sepmamba_sb", "sepmamba_sb.*"]),
    package_data={"sepmamba_sb.ops": ["csrc/*.cpp"], "sepmamba_sb.lobes": ["configs/*.yaml"],
                  "sepmamba_sb.pretrained": ["*/*"]},  # the shipped models' hub folders
    install_requires=[
        "torch>=2.1",
        "torchaudio>=2.1",
        "speechbrain>=1.1,<1.2",
        "hyperpyyaml>=1.2",
        "ruamel.yaml<0.19",
        "ninja",
        "numpy",
        "scipy",
        "pyroomacoustics>=0.7",  # sepmamba_sb.rooms: reverberant training mixtures
        "pyloudnorm>=0.1",  # sepmamba_sb.noise: SNRs as BS.1770 loudness, as WHAM! measures them
        "threadpoolctl>=3",  # sepmamba_sb.data.mixing: one BLAS thread per data-loader worker
    ],
    entry_points={"console_scripts": ["sepmamba-separate=sepmamba_sb.cli:main"]},
    extras_require={
        # CUDA kernels; their setup.py imports torch, so install with --no-build-isolation
        "cuda": ["mamba-ssm>=1.2", "causal-conv1d>=1.2"],
        "test": ["pytest>=7", "ruff>=0.5", "matplotlib"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
