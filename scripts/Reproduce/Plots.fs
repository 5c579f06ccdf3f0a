/// Figure helpers on ScottPlot: grids of 28 × 28 digits, log-x line plots, scatters coloured by digit.
module Reproduce.Plots

open System
open System.IO
open ScottPlot

/// "1 epoch", "10 epochs": for titles.
let epochs (n: int) = if n = 1 then "1 epoch" else $"{n} epochs"

/// Image pixels per side (MNIST).
let private side = 28
/// Gap between images in a grid, in image pixels.
let private gap = 1
/// Screen pixels per image pixel in a grid.
let private zoom = 2

let private save (path: string) (width: int) (height: int) (plot: Plot) =
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path)) |> ignore
    plot.SavePng(path, width, height) |> ignore

/// Tiles images (rows of 784 pixels) row by row into one matrix, `columns` images per row, with a grey
/// gap between them. Row 0 of the result is the top of the picture.
let private mosaic (images: float32[,]) (columns: int) : float[,] =
    let n = Array2D.length1 images
    let rows = (n + columns - 1) / columns
    let cell = side + gap
    let tiled = Array2D.create (rows * cell + gap) (columns * cell + gap) 0.5
    for i in 0 .. n - 1 do
        let top, left = gap + (i / columns) * cell, gap + (i % columns) * cell
        for p in 0 .. side * side - 1 do
            tiled.[top + p / side, left + p % side] <- float images.[i, p]
    tiled

/// The size in screen pixels of a grid of `count` images, `columns` per row, without margins.
let private gridSize (count: int) (columns: int) =
    let rows = (count + columns - 1) / columns
    zoom * (columns * (side + gap) + gap), zoom * (rows * (side + gap) + gap)

/// Labels around a grid of images: one per grid row (left) and one per grid column (below), where an
/// empty string leaves that row or column unlabelled and an empty list the whole side, and axis names.
type GridLabels = { Rows: string list; Columns: string list; RowAxis: string; ColumnAxis: string }

/// No labels at all.
let unlabelled = { Rows = []; Columns = []; RowAxis = ""; ColumnAxis = "" }

/// The margins around a grid: room for a title, and for the labels there are.
let private gridPadding (labels: GridLabels) =
    // About 7 screen pixels per character of tick label, so row names like "linear AE" fit.
    let widest = labels.Rows |> List.map String.length |> List.fold max 0
    let room (ticks: string list) (tickRoom: float32) (name: string) =
        10f + (if ticks.IsEmpty then 0f else tickRoom) + (if name = "" then 0f else 20f)
    PixelPadding(left = room labels.Rows (max 40f (float32 (7 * widest + 12))) labels.RowAxis, right = 10f,
                 bottom = room labels.Columns 20f labels.ColumnAxis, top = 35f)

/// Draws images (a [n, 784] array of pixels in [0, 1]) on `plot` as a grid, `columns` per row, white on
/// black, with a title and labels.
let drawImageGrid (plot: Plot) (title: string) (images: float32[,]) (columns: int) (labels: GridLabels) =
    let tiled = mosaic images columns
    let height, width = float (Array2D.length1 tiled), float (Array2D.length2 tiled)
    let heatmap = plot.Add.Heatmap tiled
    heatmap.Colormap <- Colormaps.Grayscale()
    heatmap.ManualRange <- Nullable(Range(0.0, 1.0))
    heatmap.Extent <- Nullable(CoordinateRect(0.0, width, 0.0, height))
    plot.Axes.SetLimits(0.0, width, 0.0, height)
    let centre i = float (gap + i * (side + gap)) + float side / 2.0
    let ticks (axis: IAxis) (names: string list) (position: int -> float) =
        let manual = TickGenerators.NumericManual()
        names |> List.iteri (fun i name -> if name <> "" then manual.AddMajor(position i, name))
        axis.TickGenerator <- manual
    ticks plot.Axes.Left labels.Rows (fun r -> height - centre r)
    ticks plot.Axes.Bottom labels.Columns centre
    plot.YLabel labels.RowAxis
    plot.XLabel labels.ColumnAxis
    plot.HideGrid()
    plot.Title title
    plot.Layout.Fixed(gridPadding labels)

/// Saves a grid of images (see drawImageGrid) as a PNG whose image pixels are 2 × 2 screen pixels.
/// Returns the path.
let imageGrid (path: string) (title: string) (images: float32[,]) (columns: int) (labels: GridLabels) =
    use plot = new Plot()
    drawImageGrid plot title images columns labels
    let w, h = gridSize (Array2D.length1 images) columns
    let pad = gridPadding labels
    save path (w + int (pad.Left + pad.Right)) (h + int (pad.Top + pad.Bottom)) plot
    path

/// "10³"-style labels for integer powers of ten.
let private powerOfTen (exponent: float) =
    let superscript = dict (Seq.zip "-0123456789" "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    "10" + String(string (int (Math.Round exponent)) |> Seq.map (fun c -> superscript.[c]) |> Array.ofSeq)

/// Draws several (name, xs, ys) series on `plot` with a logarithmic x axis (xs must be positive),
/// labelled axes, a legend and a title.
let drawLinesLogX (plot: Plot) (title: string) (xLabel: string) (yLabel: string) (series: (string * float[] * float[]) list) =
    let palette = Palettes.Category10()
    series |> List.iteri (fun i (name, xs, ys) ->
        let line = plot.Add.Scatter(Array.map Math.Log10 xs, ys, Nullable(palette.GetColor i))
        line.LegendText <- name)
    plot.Axes.Bottom.TickGenerator <-
        TickGenerators.NumericAutomatic(
            MinorTickGenerator = TickGenerators.LogMinorTickGenerator(), IntegerTicksOnly = true, LabelFormatter = powerOfTen)
    plot.Grid.MinorLineWidth <- 1f
    plot.Grid.MinorLineColor <- Colors.Black.WithOpacity(0.05)
    plot.Title title
    plot.XLabel xLabel
    plot.YLabel yLabel
    plot.ShowLegend(Alignment.LowerRight) |> ignore

/// Saves a line plot with a logarithmic x axis (see drawLinesLogX) whose ticks are exactly `ticks` (the
/// measured x values, say, where one tick per decade would leave a single label) and whose legend sits to
/// the right of the data, covering none of it. Returns the path.
let lineLogXTicksAt (path: string) (title: string) (xLabel: string) (yLabel: string) (ticks: float list) (series: (string * float[] * float[]) list) =
    use plot = new Plot()
    drawLinesLogX plot title xLabel yLabel series
    let manual = TickGenerators.NumericManual()
    for t in ticks do manual.AddMajor(Math.Log10 t, t.ToString(Globalization.CultureInfo.InvariantCulture))
    plot.Axes.Bottom.TickGenerator <- manual
    plot.ShowLegend(Edge.Right) |> ignore
    save path 1000 500 plot
    path

/// Saves several plots, each drawn by its own function, as panels of one PNG, `panelColumns` per row,
/// each panel `width` × `height` pixels. Returns the path.
let panels (path: string) (draws: (Plot -> unit) list) (panelColumns: int) (width: int) (height: int) =
    let plots = [ for draw in draws -> let plot = new Plot() in draw plot; plot ]
    let multiplot = Multiplot(plots.Head)
    plots.Tail |> List.iter (multiplot.AddPlot >> ignore)
    let panelRows = (plots.Length + panelColumns - 1) / panelColumns
    multiplot.Layout <- MultiplotLayouts.Grid(panelRows, panelColumns)
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path)) |> ignore
    multiplot.SavePng(path, panelColumns * width, panelRows * height) |> ignore
    plots |> List.iter (fun p -> p.Dispose())
    path

/// Saves several titled grids of the same size side by side, `panelColumns` panels per row, as one PNG.
/// Returns the path.
let imageGrids (path: string) (grids: (string * float32[,]) list) (columns: int) (panelColumns: int) =
    let w, h = grids |> List.map (fun (_, images) -> gridSize (Array2D.length1 images) columns) |> List.max
    let pad = gridPadding unlabelled
    let draws = [ for title, images in grids -> fun plot -> drawImageGrid plot title images columns unlabelled ]
    panels path draws panelColumns (w + int (pad.Left + pad.Right)) (h + int (pad.Top + pad.Bottom))

/// Draws points (xs, ys) coloured by their digit labels 0–9 on `plot`, with a legend, labelled axes and a title.
let drawScatterByDigit (plot: Plot) (title: string) (xLabel: string) (yLabel: string) (xs: float[]) (ys: float[]) (labels: int[]) =
    let palette = Palettes.Category10()
    for digit in 0 .. 9 do
        let members = [| for i in 0 .. labels.Length - 1 do if labels.[i] = digit then i |]
        let points = plot.Add.ScatterPoints(Array.map (Array.get xs) members, Array.map (Array.get ys) members, Nullable(palette.GetColor digit))
        points.MarkerSize <- 3f
        points.LegendText <- string digit
    plot.Title title
    plot.XLabel xLabel
    plot.YLabel yLabel
    plot.ShowLegend(Edge.Right) |> ignore

/// Saves a scatter coloured by digit (see drawScatterByDigit). Returns the path.
let scatterByDigit (path: string) (title: string) (xLabel: string) (yLabel: string) (xs: float[]) (ys: float[]) (labels: int[]) =
    use plot = new Plot()
    drawScatterByDigit plot title xLabel yLabel xs ys labels
    save path 800 700 plot
    path
