/// No temporary libtorch Scalar in the core. TorchSharp 0.107 turns a number into a native Scalar at every
/// `tensor * 0.5` (its operators with numbers) and every implicit or `ToScalar` conversion, and passes only
/// the Scalar's handle to libtorch: nothing references the .NET object during the call, so a garbage
/// collection started by another thread can finalize it, freeing the native value while libtorch reads it.
/// The paper-budget run, two curves on two threads, failed so after half an hour ("Unknown scalar type" in
/// Gaussian.sample). Such a race cannot be provoked on demand, so this reads the compiled core instead: every
/// Scalar comes from the Scalars module (rooted constants, or `use`-bound values), and no method calls a
/// TorchSharp member that makes a temporary Scalar from a number.
module Research.Core.Tests.ScalarLifetimeTests

open System
open System.Collections.Generic
open System.IO
open System.Reflection.Metadata
open System.Reflection.Metadata.Ecma335
open System.Reflection.PortableExecutable
open Expecto

/// A signature as text, enough to tell overloads apart across two assemblies: type names without scopes.
let private provider =
    { new ISignatureTypeProvider<string, obj> with
        member _.GetPrimitiveType code = string code
        member _.GetTypeFromDefinition(md, h, _) = md.GetString (md.GetTypeDefinition h).Name
        member _.GetTypeFromReference(md, h, _) = md.GetString (md.GetTypeReference h).Name
        member this.GetTypeFromSpecification(md, ctx, h, _) = (md.GetTypeSpecification h).DecodeSignature(this, ctx)
        member _.GetSZArrayType e = e + "[]"
        member _.GetArrayType(e, _) = e + "[,]"
        member _.GetByReferenceType e = e + "&"
        member _.GetPointerType e = e + "*"
        member _.GetGenericInstantiation(g, args) = g + "<" + String.Join(",", args) + ">"
        member _.GetGenericTypeParameter(_, i) = $"!{i}"
        member _.GetGenericMethodParameter(_, i) = $"!!{i}"
        member _.GetFunctionPointerType _ = "fnptr"
        member _.GetModifiedType(_, u, _) = u
        member _.GetPinnedType e = e }

/// The calls and newobjs of a method body, as member handles (call, callvirt, newobj; ldftn is not a call).
let private callees (body: byte[]) =
    let found = List<int>()
    // A byte-level scan: an operand that happens to hold 0x28 is not mistaken for much, since the token
    // after it must name a member of the right table to count.
    for i in 0 .. body.Length - 5 do
        if body.[i] = 0x28uy || body.[i] = 0x6Fuy || body.[i] = 0x73uy then
            let token = BitConverter.ToInt32(body, i + 1)
            let table = token >>> 24
            if table = 0x0A || table = 0x06 || table = 0x2B then found.Add token
    found

type private Assembly(path: string) =
    let pe = new PEReader(File.OpenRead path)
    let md = pe.GetMetadataReader()
    /// "Type::Name(params)" of a member reference, a method definition or (the generic method of) a method spec.
    member this.Name(token: int) =
        let h = MetadataTokens.EntityHandle token
        try
            match h.Kind with
            | HandleKind.MemberReference ->
                let m = md.GetMemberReference(MemberReferenceHandle.op_Explicit h)
                let parent =
                    match m.Parent.Kind with
                    | HandleKind.TypeReference -> md.GetString (md.GetTypeReference(TypeReferenceHandle.op_Explicit m.Parent)).Name
                    | HandleKind.TypeDefinition -> md.GetString (md.GetTypeDefinition(TypeDefinitionHandle.op_Explicit m.Parent)).Name
                    | _ -> "?"
                if m.GetKind() = MemberReferenceKind.Method then
                    let s = m.DecodeMethodSignature(provider, null)
                    let parameters = String.Join(",", s.ParameterTypes)
                    Some $"{parent}::{md.GetString m.Name}({parameters})"
                else None
            | HandleKind.MethodDefinition -> Some(this.Definition(MethodDefinitionHandle.op_Explicit h))
            | HandleKind.MethodSpecification ->
                let spec = md.GetMethodSpecification(MethodSpecificationHandle.op_Explicit h)
                this.Name(MetadataTokens.GetToken spec.Method)
            | _ -> None
        with _ -> None
    member _.Definition(h: MethodDefinitionHandle) =
        let m = md.GetMethodDefinition h
        let s = m.DecodeSignature(provider, null)
        let parameters = String.Join(",", s.ParameterTypes)
        $"{md.GetString (md.GetTypeDefinition(m.GetDeclaringType())).Name}::{md.GetString m.Name}({parameters})"
    /// Every method with a body: its declaring type's full name, its readable name, and what it calls.
    member this.Methods =
        [ for th in md.TypeDefinitions do
            let t = md.GetTypeDefinition th
            let rec fullName (t: TypeDefinition) =
                let own = md.GetString t.Name
                let d = t.GetDeclaringType()
                if d.IsNil then md.GetString t.Namespace + "." + own else fullName (md.GetTypeDefinition d) + "+" + own
            for mh in t.GetMethods() do
                let m = md.GetMethodDefinition mh
                if m.RelativeVirtualAddress <> 0 then
                    let body = pe.GetMethodBody(m.RelativeVirtualAddress).GetILBytes()
                    yield fullName t, this.Definition mh, [ for token in callees body do match this.Name token with Some n -> yield n | None -> () ] ]

/// Calls that make a Scalar.
let private makesScalar (callee: string) = callee.StartsWith "Scalar::op_Implicit" || callee.Contains "::ToScalar("

let private folder = AppContext.BaseDirectory

/// TorchSharp's members that make a temporary Scalar, themselves or through the members they call (its operators
/// with numbers, `square ()` as `pow 2`, `add_ t` with an alpha of 1, and the like).
let private temporaryMakers =
    lazy
        (let torch = Assembly(Path.Combine(folder, "TorchSharp.dll"))
         let methods = torch.Methods
         let makers = methods |> List.filter (fun (_, _, calls) -> calls |> List.exists makesScalar) |> List.map (fun (_, name, _) -> name) |> HashSet
         let mutable grew = true
         while grew do
             let more = methods |> List.filter (fun (_, name, calls) -> not (makers.Contains name) && calls |> List.exists makers.Contains)
             grew <- not more.IsEmpty
             for _, name, _ in more do makers.Add name |> ignore
         makers)

/// The core's methods that make a Scalar outside the Scalars module or call such a TorchSharp member.
let offenders () =
    let core = Assembly(Path.Combine(folder, "Research.Core.dll"))
    let makers = temporaryMakers.Force()
    [ for typeName, name, calls in core.Methods do
        // The module itself, and its static initialiser (the constants), which the compiler names after it.
        if not (typeName = "Research.Core.Scalars" || typeName.EndsWith "$Research.Core.Scalars") then
            let bad = calls |> List.filter (fun c -> makesScalar c || makers.Contains c) |> List.distinct
            if not bad.IsEmpty then
                let calls = String.Join(", ", bad)
                yield $"{typeName}: {name} calls {calls}" ]

let tests =
    testList "Scalar lifetimes" [
        test "TorchSharp's operators with numbers are recognised as making temporary Scalars" {
            // Guards the scan itself: were it to find nothing, the test below would pass whatever the core did.
            let makers = temporaryMakers.Force()
            Expect.isTrue (makers |> Seq.exists (fun m -> m.StartsWith "Tensor::op_Multiply(" && m.Contains "Double")) "tensor * double makes a Scalar"
        }
        test "every Scalar of the core outlives the native call that reads it" {
            let found = offenders ()
            Expect.isEmpty found ("temporary Scalars (use Scalars' constants, or bind Scalars.ofFloat with use):\n" + String.Join("\n", found))
        }
    ]
