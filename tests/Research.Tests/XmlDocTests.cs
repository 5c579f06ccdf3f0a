using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Microsoft.FSharp.Core;
using Microsoft.FSharp.Reflection;

namespace Research.Tests;

/// <summary>Every public type and member of both libraries has a real &lt;summary&gt; in the XML documentation
/// file that ships in the package. C# enforces presence at build time (CS1591 is an error there through
/// TreatWarningsAsErrors + GenerateDocumentationFile); F# has no missing-doc warning, so this test is
/// Research.Core's check. It also rejects empty summaries and placeholders in either library.</summary>
public sealed class XmlDocTests
{
    private const BindingFlags Declared =
        BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>Member id ("T:Research.Core.Pca.PcaFit", "M:…") → the text of its summary.</summary>
    private static Dictionary<string, string> Summaries(string xmlPath) =>
        XDocument.Load(xmlPath).Descendants("member")
            .Select(m => (Id: (string?)m.Attribute("name") ?? "", Summary: m.Element("summary")))
            .GroupBy(m => m.Id)
            .ToDictionary(g => g.Key, g => string.Join(" ", g.Select(m => m.Summary is null ? "" : Normalise(m.Summary))));

    /// <summary>The visible text of a summary (a &lt;see cref&gt; counts as its target's name), whitespace collapsed.</summary>
    private static string Normalise(XElement summary) =>
        Regex.Replace(string.Concat(summary.DescendantNodes().Select(n => n switch
        {
            XText t => t.Value,
            XElement { Name.LocalName: "see" or "paramref" or "typeparamref" } e =>
                ((string?)e.Attribute("cref") ?? (string?)e.Attribute("name") ?? (string?)e.Attribute("langword") ?? "") + " ",
            _ => "",
        })), @"\s+", " ").Trim();

    private static bool IsPlaceholder(string summary) =>
        summary.Length < 3 || Regex.IsMatch(summary, @"\b(TODO|TBD|FIXME|XXX)\b|^\.*$|Missing XML comment", RegexOptions.IgnoreCase);

    private static bool Generated(MemberInfo m) => m.IsDefined(typeof(CompilerGeneratedAttribute), false);

    private static SourceConstructFlags? FSharpKind(Type t) =>
        t.GetCustomAttribute<CompilationMappingAttribute>()?.SourceConstructFlags is { } f ? f & SourceConstructFlags.KindMask : null;

    /// <summary>Overrides are documented by the member they override.</summary>
    private static bool IsOverride(MemberInfo m) => m switch
    {
        MethodInfo mi => mi.GetBaseDefinition().DeclaringType != mi.DeclaringType,
        PropertyInfo pi => (pi.GetMethod ?? pi.SetMethod) is { } acc && acc.GetBaseDefinition().DeclaringType != acc.DeclaringType,
        _ => false,
    };

    [Theory]
    [InlineData("Research.Core")]
    [InlineData("Research")]
    public void Every_public_type_and_member_has_a_non_empty_summary(string assemblyName)
    {
        var assembly = Assembly.Load(assemblyName);
        var xmlPath = Path.ChangeExtension(assembly.Location, ".xml");
        Assert.True(File.Exists(xmlPath), $"{xmlPath} is missing: GenerateDocumentationFile must be on for {assemblyName}.");
        var summaries = Summaries(xmlPath);
        bool isFSharp = assembly.IsDefined(typeof(FSharpInterfaceDataVersionAttribute));
        var problems = new List<string>();
        int checkedCount = 0;

        // Every documented id among `ids` (exact id, or an overload/generic form of it) with a real summary.
        int Documented(string prefix, string name) =>
            summaries.Count(kv =>
                (kv.Key == prefix + name || kv.Key.StartsWith(prefix + name + "(") || kv.Key.StartsWith(prefix + name + "``"))
                && !IsPlaceholder(kv.Value));

        void Require(string what, int needed, params string[] prefixes)
        {
            checkedCount++;
            var parts = what.Split(' ', 2);
            int found = prefixes.Sum(p => Documented(p, parts[1]));
            if (found < needed) problems.Add($"{parts[0]} {parts[1]}" + (needed > 1 ? $" ({needed} overloads, {found} documented)" : ""));
        }

        foreach (var type in assembly.GetExportedTypes().OrderBy(t => t.FullName))
        {
            if (Generated(type)) continue;
            // F# unions get a public nested Tags class of case constants: generated, documented by the cases.
            if (type.Name == "Tags" && type.DeclaringType is { } u && FSharpType.IsUnion(u, null)) continue;
            string id = type.FullName!.Replace('+', '.');
            Require("type " + id, 1, "T:");

            var kind = FSharpKind(type);
            bool isUnionCaseClass = type.DeclaringType is { } parent && type.IsSubclassOf(parent);
            if (isFSharp && kind == SourceConstructFlags.SumType && !isUnionCaseClass)
                foreach (var c in FSharpType.GetUnionCases(type, null))
                    Require("type " + id + "." + c.Name, 1, "T:");   // F# documents union cases as T:Union.Case

            var members = type.GetMembers(Declared)
                .Where(m => m is not Type && !Generated(m) && !IsOverride(m))
                .Where(m => m is not MethodBase { IsSpecialName: true } || m is ConstructorInfo)
                .Where(m => m is not FieldInfo { IsSpecialName: true })
                .ToList();

            if (isFSharp && kind == SourceConstructFlags.Exception)
            {
                // F# cannot attach doc comments to exception fields: the exception's summary must name each one.
                summaries.TryGetValue("T:" + id, out var text);
                foreach (var p in members.OfType<PropertyInfo>())
                {
                    checkedCount++;
                    if (text is null || !Regex.IsMatch(text, $@"\b{Regex.Escape(p.Name)}\b"))
                        problems.Add($"exception field {id}.{p.Name} (not named in the exception's summary)");
                }
                continue;
            }

            foreach (var group in members.GroupBy(m => (m.MemberType, m.Name)))
            {
                int count = group.Count();
                switch (group.Key.MemberType)
                {
                    case MemberTypes.Constructor:
                        // F# classes take their primary constructor's documentation from the type; records,
                        // unions and exceptions have generated constructors. C# constructors need their own,
                        // except the implicit parameterless one of a type that declares none.
                        int declared = group.Count(c => ((ConstructorInfo)c).GetParameters().Length > 0);
                        if (!isFSharp && declared > 0) Require($"constructor {id}.#ctor", declared, "M:");
                        break;
                    case MemberTypes.Method:
                        Require($"method {id}.{group.Key.Name}", count, "M:");
                        break;
                    case MemberTypes.Property:
                        Require($"property {id}.{group.Key.Name}", count, "P:");
                        break;
                    case MemberTypes.Field:
                        // F# writes module-level literals as P: ids.
                        Require($"field {id}.{group.Key.Name}", count, "F:", "P:");
                        break;
                    case MemberTypes.Event:
                        Require($"event {id}.{group.Key.Name}", count, "E:");
                        break;
                }
            }
        }

        Assert.True(checkedCount > 50, $"only {checkedCount} public types and members found in {assemblyName}");
        Assert.True(problems.Count == 0,
            $"{problems.Count} of {checkedCount} public types/members of {assemblyName} lack a real <summary> in {Path.GetFileName(xmlPath)}:\n  "
            + string.Join("\n  ", problems));
    }
}
