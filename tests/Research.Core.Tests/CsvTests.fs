module Research.Core.Tests.CsvTests

open System
open System.Globalization
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Research.Core
open Research.Core.Tests.IdxTests

let private config n = { FsCheckConfig.defaultConfig with maxTest = n }

let private parse (header: bool) (separator: char) (text: string) =
    Csv.readReader "<text>" (new StringReader(text)) header separator

let private genFinite: Gen<float32> =
    Gen.choose (Int32.MinValue, Int32.MaxValue)
    |> Gen.map BitConverter.Int32BitsToSingle
    |> Gen.filter Single.IsFinite

let tests =
    testList "Csv" [
        test "a plain table, a header, other separators, quotes, CRLF, blank lines and padding" {
            let want = array2D [ [ 1.0f; -2.5f; 3e-5f ]; [ 4.0f; 5.0f; 6.0f ] ]
            Expect.equal (parse false ',' "1,-2.5,3e-5\n4,5,6\n") want "plain"
            Expect.equal (parse true ',' "a,\"b, with a comma\",c\n1,-2.5,3e-5\n4,5,6") want "header with a quoted comma"
            Expect.equal (parse false ';' "1;-2.5;3E-05\r\n4;5;6\r\n") want "semicolons and CRLF"
            Expect.equal (parse false '\t' "1\t-2.5\t0.00003\n\n  \n4\t5\t6\n\n") want "tabs and blank lines"
            Expect.equal (parse false ',' " 1 , \"-2.5\" ,3e-5\n4,\"5\",6") want "padding and quoted numbers"
            Expect.equal (parse false ' ' "1 -2.5 3e-5\n4 5 6") want "spaces as the separator"
            let special = parse false ',' "NaN,nan,inf,-inf,Infinity,-0"
            Expect.isTrue (Single.IsNaN special.[0, 0] && Single.IsNaN special.[0, 1]) "NaN"
            Expect.equal special.[0, 2..] [| Single.PositiveInfinity; Single.NegativeInfinity; Single.PositiveInfinity; -0.0f |] "infinities and -0"
            Expect.equal (BitConverter.SingleToInt32Bits special.[0, 5]) (BitConverter.SingleToInt32Bits -0.0f) "-0 keeps its sign"
            Expect.equal (parse false ',' "7") (array2D [ [ 7.0f ] ]) "one cell"
        }

        testPropertyWithConfig (config 200) "numbers written with R come back bit for bit, correctly rounded from decimal"
            (Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 6)) (Gen.arrayOfLength 24 genFinite))) (fun (columns, values) ->
                let rows = values.Length / columns
                let text = StringBuilder()
                for i in 0 .. rows - 1 do
                    text.AppendLine(String.Join(",", [| for j in 0 .. columns - 1 -> values.[i * columns + j].ToString("R", CultureInfo.InvariantCulture) |])) |> ignore
                let a = parse false ',' (text.ToString())
                Expect.equal a (Array2D.init rows columns (fun i j -> values.[i * columns + j])) "round trip"
                // Decimal text that is not a float32's shortest form is rounded to nearest, as Single.Parse does.
                let d = float values.[0] * 1.0000001
                let cell = d.ToString("R", CultureInfo.InvariantCulture)
                Expect.equal (parse false ',' cell).[0, 0] (Single.Parse(cell, CultureInfo.InvariantCulture)) "rounded"))

        test "the culture does not matter" {
            let saved = CultureInfo.CurrentCulture
            try
                CultureInfo.CurrentCulture <- CultureInfo.GetCultureInfo "de-DE"
                Expect.equal (parse false ';' "1.5;2") (array2D [ [ 1.5f; 2.0f ] ]) "a '.' decimal point under de-DE"
                let e = expectInvalid "comma decimal" (fun () -> parse false ';' "1,5;2")
                Expect.stringContains e.Message "'1,5' is not a number" "a comma is not a decimal point"
            finally CultureInfo.CurrentCulture <- saved
        }

        test "ragged rows, non-numbers and empty files are InvalidDataException naming the place" {
            let cases =
                [ "ragged", false, "1,2,3\n4,5\n", "line 2 has 2 cell(s) but line 1, the first data row, has 3"
                  "ragged after header", true, "a,b\n1,2,3\n", "line 2 has 3 cell(s) but the header (line 1) has 2"
                  "trailing separator", false, "1,2\n3,4,\n", "line 2 has 3 cell(s)"
                  "word", false, "1,2\n3,x4\n", "line 2 (data row 2), column 2: 'x4' is not a number"
                  "header not declared", false, "a,b\n1,2\n", "line 1 (data row 1), column 1: 'a' is not a number (if the first line is a header"
                  "empty cell", false, "1,,3\n", "column 2: is empty"
                  "thousands", false, "1 000,2\n", "'1 000' is not a number"
                  "overflow", false, "1e39\n", "outside the range of float32"
                  "open quote", false, "\"1,2\n", "not closed"
                  "text after quote", false, "\"1\"x,2\n", "after the closing quote"
                  "empty", false, "", "no data rows"
                  "blank", false, "\n  \n\t\n", "no data rows"
                  "header only", true, "a,b,c\n", "header but no data rows" ]
            for name, header, text, expected in cases do
                let e = expectInvalid name (fun () -> parse header ',' text)
                Expect.stringContains e.Message expected name
            use dir = new TempDir()
            let path = dir.File "bad.csv"
            File.WriteAllText(path, "1,2\n3\n")
            let e = expectInvalid "file" (fun () -> Csv.readArray path false ',')
            Expect.stringContains e.Message path "names the file"
        }

        test "files: UTF-8 with a byte-order mark, a tensor; bad arguments are ArgumentException" {
            use dir = new TempDir()
            let path = dir.File "t.csv"
            File.WriteAllText(path, "x,y\n1,2\n3,4\n", UTF8Encoding(true))
            Expect.equal (Csv.readArray path true ',') (array2D [ [ 1.0f; 2.0f ]; [ 3.0f; 4.0f ] ]) "BOM skipped"
            use t = Csv.read path true ','
            Expect.equal t.shape [| 2L; 2L |] "tensor shape"
            for name, f in
                [ "null path", (fun () -> Csv.readArray null false ',' |> ignore)
                  "empty path", (fun () -> Csv.readArray "" false ',' |> ignore)
                  "quote separator", (fun () -> Csv.readArray (dir.File "absent.csv") false '"' |> ignore)
                  "newline separator", (fun () -> Csv.readArray path false '\n' |> ignore) ] do
                let e = Expect.throwsC f id
                Expect.isTrue (e :? ArgumentException) $"{name}: ArgumentException, got {e.GetType().Name}"
            match Expect.throwsC (fun () -> Csv.readArray (dir.File "absent.csv") false ',' |> ignore) id with
            | :? FileNotFoundException -> ()
            | other -> failtestf "expected FileNotFoundException, got %O" other
        }
    ]
