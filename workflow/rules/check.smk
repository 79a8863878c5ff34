# `snakemake check --cores 2 --config scale=ci`: the scale's summary against committed reference values,
# and every claim the registry expects to hold at this scale (`expect:` in workflow/claims.yaml) must pass
# (targets go before --config, which takes every following word). A part of the scale (`only=...`)
# compares the reference's rows of its own cells; a scale without a reference (paper) checks its claims
# alone and says so in check.txt. Regenerate the reference after an intended change with
#   snakemake check --cores 2 --config scale=ci update_reference=True


rule check:
    input:
        summary=rules.summary.output[0],
        claims=rules.claims.output[0],
    output:
        f"{RESULTS}/check.txt",
    log:
        f"{RESULTS}/logs/check.log",
    localrule: True
    params:
        reference=f"workflow/reference/{SCALE}_summary.csv",
        tolerances=config["check"]["tolerances"],
        update_reference=config["update_reference"],
        part=PLAN.part,
    script:
        "../scripts/check.py"
