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


def check_cifar10_reachable():
    """Offline, stop before any job starts: a run started now could not finish the job without the data."""
    import sys
    import urllib.request

    from centralflows.data import cifar10

    if not any(j.rule.name == "download_cifar10" for j in workflow.dag.needrun_jobs()):
        return
    try:
        request = urllib.request.Request(cifar10.URL, method="HEAD")
        urllib.request.urlopen(request, timeout=30).close()
    except OSError as error:  # URLError, timeouts, refused connections
        sys.exit(
            f"error: the CIFAR-10 archive {CIFAR_ARCHIVE} is missing and {cifar10.URL} cannot be "
            f"reached ({error}).\n{cifar10._fetch_hint(config['data_root'])}\nNo job was started."
        )


onstart:
    check_cifar10_reachable()
