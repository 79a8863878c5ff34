# One plot_<figure> rule per registry entry: the script is an explicit input, the table is small.

for _figure in PLAN.figures:

    rule:
        name:
            f"plot_{_figure}"
        input:
            table=f"{RESULTS}/tables/figures/{_figure}.parquet",
            cells=f"{RESULTS}/tables/figures/{_figure}.cells.csv",
            script=f"workflow/scripts/figures/{get_figure_script(_figure)}.py",
        output:
            pdf=report(
                f"{FIGURES}/{_figure}.pdf",
                caption="../report/figure.rst",
                category="Figures",
                labels={"figure": _figure, "format": "pdf"},
            ),
            png=report(
                f"{FIGURES}/{_figure}.png",
                caption="../report/figure.rst",
                category="Figures",
                labels={"figure": _figure, "format": "png"},
            ),
        log:
            f"{RESULTS}/logs/plot/{_figure}.log",
        localrule: True
        params:
            figure=_figure,
            script=get_figure_script(_figure),
            entry=config["figures"][_figure],
            cells=get_figure_roles(_figure),
            cell_names=get_figure_cells(_figure),
            reads=get_figure_reads(_figure),
            smooth=config["scales"][SCALE]["smooth"],
            scale=SCALE,
        # `{params.script}`, not an f-string of `_figure`: Snakemake evaluates the script path when the
        # job runs, after the loop has ended, so `_figure` would name the last figure for every rule.
        script:
            "../scripts/figures/{params.script}.py"
