"""A trace as one static picture (PNG, SVG, PDF) for slides: matplotlib (the ``plot`` extra).

Left: the network, neurons in layers filled by their activation a and labelled with a
and δ, weights as lines coloured by sign (blue +, red −) with width ∝ |w|; an image
input (784 = 28×28 or 64 = 8×8 pixels) is drawn as the picture.  Right: the forward
step, the cost and BP1–BP4 and the update for one path through the network (the target
output neuron, the hidden neuron with the largest error, its largest input term), each
with its numbers and the kernel that computed it.  Numbers are those of the page
(:func:`loopnet.trace.view_model`).
"""

import numpy as np

from .trace import view_model

POS, NEG = (31 / 255, 95 / 255, 168 / 255), (192 / 255, 57 / 255, 43 / 255)


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--png/--svg need matplotlib: pip install 'loopnet[plot]'") from None
    return plt


def selection(vm):
    """The neurons the picture follows: label (or 0) at the output, largest |δ| in each hidden
    layer, and in the input the largest term of the hidden neuron's sum (as the page does)."""
    L = vm["L"]
    sel = [0] * (L + 1)
    sel[L] = vm["label"] if vm["label"] is not None else 0
    for l in range(L - 1, 0, -1):
        sel[l] = int(np.argmax(np.abs([float(v) for v in vm["lay"][l]["d"]])))
    sel[0] = vm["fwd"][1][sel[1]]["t"][0][0]
    return sel


def _strip(html):
    import re
    s = re.sub(r"<sup>(.*?)</sup>", r"^\1", html)
    s = re.sub(r"<sub>(.*?)</sub>", r"_\1", s)
    s = re.sub(r"<[^>]+>", "", s)
    return s.replace("&nbsp;", " ")


def _sum_text(v):
    terms = " + ".join(f"{_p(t[1])}·{_p(t[2])}" for t in v["t"][:4])
    more = len(v["t"]) - 4 + (v["rest"][0] if v["rest"] else 0)
    return terms + (f" + … ({more} more)" if more > 0 else "")


def _p(s):
    return f"({s})" if s.startswith("-") else s


def equation_lines(vm, sel):
    """(label, text, kernel) rows of the right-hand panel."""
    L, K = vm["L"], vm["kernels"]
    rows = []
    j = sel[1]
    f1 = vm["fwd"][1][j]
    rows.append(("forward", f"z^1_{j} = Σ_k w^1_{j}k a^0_k + b^1_{j} = {_sum_text(f1)} + {_p(vm['lay'][1]['b'][j])}"
                            f"\n   = {vm['lay'][1]['z'][j]};   a^1_{j} = σ(z^1_{j}) = {vm['lay'][1]['a'][j]}",
                 K["forward"]))
    jL = sel[L]
    rows.append(("cost", f"{_strip(vm['cost_html'])} = {vm['cost_x']}", K["cost"]))
    b1 = vm["bp1"][jL]
    rows.append(("BP1", f"δ^{L}_{jL} = {_strip(b1['sym']).replace('^L', f'^{L}').replace('_j', f'_{jL}')} = {b1['num']} = {vm['lay'][L]['d'][jL]}",
                 K["BP1"]))
    if L >= 2:
        l = L - 1
        jj = sel[l]
        v = vm["bp2"][l][jj]
        rows.append(("BP2", f"δ^{l}_{jj} = (Σ_k w^{l + 1}_k{jj} δ^{l + 1}_k) σ'(z^{l}_{jj}) = ({v['s']}) · "
                            f"{vm['lay'][l]['sp'][jj]} = {vm['lay'][l]['d'][jj]}", K["BP2"]))
    rows.append(("BP3", f"∂C/∂b^{L}_{jL} = δ^{L}_{jL} = {vm['lay'][L]['nb'][jL]}", K["BP3"]))
    k = sel[L - 1]
    a_in = vm["x"] if L == 1 else vm["lay"][L - 1]["a"]
    rows.append(("BP4", f"∂C/∂w^{L}_{jL},{k} = a^{L - 1}_{k} δ^{L}_{jL} = {a_in[k]} · {_p(vm['lay'][L]['d'][jL])}"
                        f" = {vm['W'][L]['g'][jL][k]}", K["BP4"]))
    W = vm["W"][L]
    rows.append(("update", f"w^{L}_{jL},{k} ← {W['w'][jL][k]} − {vm['eta']} · {_p(W['g'][jL][k])} = "
                           f"{W['wn'][jL][k]};  C_x: {vm['cost_x']} → {vm['cost_after']}", K["update"]))
    return rows


def _draw_network(ax, vm, sel, top):
    sizes, L = vm["sizes"], vm["L"]
    img = vm["image"]
    H = 1.0
    xs = np.linspace(0, 1, L + 1) if not img else np.r_[0.0, np.linspace(0.45, 1, L)]

    def ys(n):
        return [(H * (n - i - 0.5) / n) for i in range(n)]

    pos = {}
    if img:
        h, w = img
        side = 0.34
        x0, y0 = -0.02, 0.5 - side / 2
        pix = np.array([float(v) for v in vm["x"]]).reshape(h, w)
        ax.imshow(pix, cmap="gray_r", vmin=0, vmax=max(1.0, pix.max()),
                  extent=(x0, x0 + side, y0, y0 + side), zorder=1, interpolation="nearest")
        for k in range(sizes[0]):
            r, c = divmod(k, w)
            pos[0, k] = (x0 + (c + 0.5) * side / w, y0 + side - (r + 0.5) * side / h)
    else:
        for k, y in enumerate(ys(sizes[0])):
            pos[0, k] = (xs[0], y)
    for l in range(1, L + 1):
        for j, y in enumerate(ys(sizes[l])):
            pos[l, j] = (xs[l], y)
    for l in range(1, L + 1):
        Wl = np.array([[float(v) for v in row] for row in vm["W"][l]["w"]])
        m = np.abs(Wl).max() or 1.0
        if Wl.size <= 1500:
            pairs = [(j, k) for j in range(sizes[l]) for k in range(sizes[l - 1])]
        else:
            pairs = [(sel[l], t[0]) for t in vm["fwd"][l][sel[l]]["t"]]
        many = len(pairs) > 40
        for j, k in pairs:
            v = Wl[j, k]
            on = not many or j == sel[l]
            (x1, y1), (x2, y2) = pos[l - 1, k], pos[l, j]
            ax.plot([x1, x2], [y1, y2], color=POS if v >= 0 else NEG,
                    lw=0.3 + 3.2 * abs(v) / m, alpha=0.9 if on else 0.18, zorder=2)
    gold = "#e6a700"
    for l in range(1, L + 1):               # the path followed on the right, in gold
        (x1, y1), (x2, y2) = pos[l - 1, sel[l - 1]], pos[l, sel[l]]
        ax.plot([x1, x2], [y1, y2], color=gold, lw=3.5, zorder=3, solid_capstyle="round")
    if img:
        from matplotlib.patches import Rectangle
        x, y = pos[0, sel[0]]
        c = 0.34 / max(img)
        ax.add_patch(Rectangle((x - c / 2, y - c / 2), c, c, fc="none", ec=gold, lw=2, zorder=4))
    for l in range(1, L + 1):
        n = sizes[l]
        r = min(0.035, 0.42 / n)
        lay = vm["lay"][l]
        for j in range(n):
            x, y = pos[l, j]
            a = float(lay["a"][j])
            shade = min(1.0, max(0.0, a)) if lay["act"] in ("sigmoid", "softmax") else 0.5
            face = tuple(1 - shade * (1 - c) for c in POS)
            ax.add_patch(_circle((x, y), r, face, j == sel[l]))
            if n <= 12 or j == sel[l]:
                lab = f"a={lay['a'][j]}\nδ={lay['d'][j]}"
                if l == L and vm["label_names"] and n <= 12:
                    lab = vm["label_names"][j] + "\n" + lab
                ax.text(x + r + 0.012, y, lab, fontsize=7 if n > 6 else 8, va="center", zorder=5,
                        bbox=dict(fc="white", ec="none", alpha=0.7, pad=0.3))
    if not img:
        for k in range(sizes[0]):
            x, y = pos[0, k]
            ax.add_patch(_circle((x, y), min(0.035, 0.42 / sizes[0]), "white", k == sel[0]))
            if sizes[0] <= 12:
                ax.text(x - 0.05, y, f"x{k}={vm['x'][k]}", fontsize=8, ha="right", va="center")
    titles = ["input"] + ["hidden"] * (L - 1) + ["output"]
    for l in range(L + 1):
        x = xs[l] if not (img and l == 0) else 0.15
        ax.text(x, 1.04, f"{titles[l]} l={l} ({sizes[l]})", ha="center", fontsize=9, weight="bold")
    ax.set_xlim(-0.15 if not img else -0.05, 1.25)
    ax.set_ylim(-0.03, 1.09)
    ax.set_aspect("auto")
    ax.axis("off")


def _circle(xy, r, face, selected):
    from matplotlib.patches import Circle
    return Circle(xy, r, fc=face, ec="#e6a700" if selected else "#444",
                  lw=2.5 if selected else 0.8, zorder=4)


def figure(tr, *, eta=3.0, digits=4, top=8, caption="", label_names=None):
    """A matplotlib Figure of the trace (see the module docstring)."""
    plt = _pyplot()
    vm = view_model(tr, eta=eta, digits=digits, top=top, caption=caption, label_names=label_names)
    sel = selection(vm)
    fig = plt.figure(figsize=(13, 6.2))
    ax = fig.add_axes([0.01, 0.06, 0.46, 0.84])
    _draw_network(ax, vm, sel, top)
    tx = fig.add_axes([0.49, 0.02, 0.5, 0.88])
    tx.axis("off")
    y = 0.97
    import textwrap
    for label, text, kernel in equation_lines(vm, sel):
        text = "\n".join(textwrap.fill(t, 88, subsequent_indent="      ") for t in text.split("\n"))
        if label:
            tx.text(0.0, y, label, fontsize=10, weight="bold", va="top",
                    bbox=dict(fc="#222", ec="none", pad=1.5), color="white")
        tx.text(0.13, y, text, fontsize=8.6, va="top", family="DejaVu Sans", linespacing=1.5)
        n = text.count("\n") + 1
        tx.text(0.13, y - 0.042 * n, kernel, fontsize=7.5, va="top", family="monospace",
                color="#3b4b8a")
        y -= 0.042 * n + 0.075
    fig.suptitle(vm["title"], fontsize=13, x=0.01, ha="left", y=0.985)
    sub = (f"hidden σ {vm['activation']}, output {vm['output']}, cost {vm['cost']}, η = {vm['eta']}; "
           "lines: blue +, red −, width ∝ |w|; gold: the path followed on the right")
    fig.text(0.01, 0.925, (caption + ". " if caption else "") + sub, fontsize=8.5, color="#444")
    return fig


def save_figure(tr, path, **options):
    """Write :func:`figure` to ``path`` (.png, .svg or .pdf by its suffix)."""
    plt = _pyplot()
    fig = figure(tr, **options)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
