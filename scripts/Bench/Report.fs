/// Turns the children's results into the Markdown report.
module Bench.Report

open System
open System.Text
open System.Text.Json.Nodes
open Bench.Common

/// Results of repeated children, keyed like "ours.vae-epoch" / "torch.vae-epoch".
type Results = Collections.Generic.Dictionary<string, ResizeArray<JsonObject>>

let num (o: JsonObject) (key: string) = o[key].GetValue<float>()
let floats (node: JsonNode) = [ for v in node.AsArray() -> v.GetValue<float>() ]

let samples (r: Results) key field =
    match r.TryGetValue key with
    | true, xs -> [ for o in xs -> num o field ]
    | _ -> []

let last (r: Results) key =
    match r.TryGetValue key with
    | true, xs when xs.Count > 0 -> Some xs.[xs.Count - 1]
    | _ -> None

let f (digits: int) (x: float) = if Double.IsNaN x then "n/a" else x.ToString("F" + string digits, inv)

/// "median [min–max] (n = N)" of a sample, or n/a.
let spread digits (xs: float list) =
    match xs with
    | [] -> "n/a"
    | [ x ] -> f digits x
    | _ -> $"{f digits (median xs)} [{f digits (List.min xs)}–{f digits (List.max xs)}]"

let verdict ok = if ok then "met" else "**missed**"

/// A Markdown table from a header and rows.
let table (header: string list) (rows: string list list) =
    let sb = StringBuilder()
    let line (cells: string list) = sb.AppendLine("| " + String.Join(" | ", cells) + " |") |> ignore
    line header
    line [ for _ in header -> "---" ]
    for r in rows do line r
    sb.ToString()
