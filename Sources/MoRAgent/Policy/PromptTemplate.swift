/// How a policy turns an environment step into a prompt.
///
/// Placeholders: `{goal}`, `{observation}`, `{step}` (1-based current step), `{step_count}`
/// (steps taken so far), `{history_length}`, `{history}` (the last steps, each rendered with
/// `historyEntry`, whose own placeholders are `{k}`, `{observation}`, `{action}`). The first step
/// uses `firstStep`, later ones `laterStep` (the shape verl-agent's ALFWorld prompts have).
public struct PromptTemplate: Equatable, Sendable {
    /// The template of step 1.
    public var firstStep: String
    /// The template of steps 2, 3, …
    public var laterStep: String
    /// One history record.
    public var historyEntry: String
    /// How many past steps `{history}` shows.
    public var historyLength: Int
    /// Wrap the rendered text as one ChatML user turn followed by the assistant header
    /// (`<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n`), as Qwen2 chat models expect.
    public var chatML: Bool

    /// A ReAct-style default: reason inside `<think>`, act inside `<action>`.
    public init(firstStep: String = PromptTemplate.defaultFirstStep, laterStep: String = PromptTemplate.defaultLaterStep,
                historyEntry: String = "[Observation {k}: '{observation}', Action {k}: '{action}']",
                historyLength: Int = 5, chatML: Bool = false) {
        self.firstStep = firstStep
        self.laterStep = laterStep
        self.historyEntry = historyEntry
        self.historyLength = historyLength
        self.chatML = chatML
    }

    /// Step 1 of the default template.
    public static let defaultFirstStep = """
        You are an agent acting in a text environment. Your task is to: {goal}
        Your current observation is: {observation}
        Think step by step inside <think> </think>, then give exactly one action inside <action> </action>.

        """
    /// Later steps of the default template.
    public static let defaultLaterStep = """
        You are an agent acting in a text environment. Your task is to: {goal}
        You have taken {step_count} step(s). Your most recent {history_length} observations and actions:
        {history}
        You are now at step {step} and your current observation is: {observation}
        Think step by step inside <think> </think>, then give exactly one action inside <action> </action>.

        """

    /// The prompt text of step `history.count + 1`.
    public func render(goal: String, observation: String, history: [(observation: String, action: String)]) -> String {
        let recent = history.suffix(max(0, historyLength))
        let first = history.count - recent.count + 1
        let lines = recent.enumerated().map { i, entry in
            fill(historyEntry, ["k": String(first + i), "observation": entry.observation, "action": entry.action])
        }
        let text = fill(history.isEmpty ? firstStep : laterStep, [
            "goal": goal, "observation": observation, "step": String(history.count + 1), "step_count": String(history.count),
            "history_length": String(recent.count), "history": lines.joined(separator: "\n"),
        ])
        return chatML ? "<|im_start|>user\n\(text)<|im_end|>\n<|im_start|>assistant\n" : text
    }

    /// Replaces each `{name}` of `values` in one left-to-right pass, so a value that itself
    /// contains braces (an observation quoting `{goal}`) is never expanded again.
    func fill(_ template: String, _ values: [String: String]) -> String {
        var out = ""
        var rest = template[...]
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            if let close = rest[open...].firstIndex(of: "}"), let v = values[String(rest[rest.index(after: open)..<close])] {
                out += v
                rest = rest[rest.index(after: close)...]
            } else {
                out += "{"
                rest = rest[rest.index(after: open)...]
            }
        }
        return out + rest
    }
}

/// Pulls the action out of a generated response the way verl-agent's projections do: the text
/// between the first `<action>` and the following `</action>`, trimmed; when a tag is missing,
/// the response's last 30 characters, flagged invalid.
public enum ActionExtractor {
    /// `(action, valid)` for `response`.
    public static func extract(_ response: String, open: String = "<action>", close: String = "</action>") -> (action: String, valid: Bool) {
        if let start = response.firstRange(of: open), let end = response[start.upperBound...].firstRange(of: close) {
            return (String(response[start.upperBound..<end.lowerBound]).trimmingWhitespace(), true)
        }
        return (String(response.suffix(30)).trimmingWhitespace(), false)
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
