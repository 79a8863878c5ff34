# Data that must be fetched; the synthetic CIFAR stand-in and the sorting task are generated in the run.


rule download_cifar10:
    output:
        CIFAR_ARCHIVE,
    log:
        f"{RESULTS}/logs/download_cifar10.log",
    retries: 2
    localrule: True  # compute nodes of many clusters have no internet access
    script:
        "../scripts/download_cifar10.py"
